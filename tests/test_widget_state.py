"""Widget state in the notebook: the server keeps the latest state of a kernel's widget
models from iopub and writes that of the widgets the outputs show into
``metadata.widgets``, so the saved file and the export show them with no page and after
the kernel is gone (a tqdm bar at 60/60), as JupyterLab's "Save Widget State" would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import nbformat
import pytest

from .conftest import Session, read_saved, write_notebook
from .test_execution import run_to_idle

STATE = "application/vnd.jupyter.widget-state+json"
VIEW = "application/vnd.jupyter.widget-view+json"
TQDM = (
    "from tqdm.notebook import tqdm\nimport time\nfor i in tqdm(range(60)):\n    time.sleep(0.02)"
)
SLIDER = "import ipywidgets as w\ns = w.IntSlider(value=3)\ns"


def shown_models(notebook: Any) -> list[str]:
    return [o["data"][VIEW]["model_id"] for c in notebook["cells"] if c["cell_type"] == "code"
            for o in c["outputs"] if VIEW in o.get("data", {})]  # fmt: skip


def model_state(notebook: Any) -> dict[str, Any]:
    widgets: dict[str, Any] = notebook["metadata"].get("widgets", {}).get(STATE, {})
    return widgets.get("state", {})


def bar_text(notebook: Any) -> str:
    """What the saved tqdm bar shows: its labels' HTML and its progress value."""
    [box] = shown_models(notebook)
    state = model_state(notebook)
    parts = []
    for ref in state[box]["state"]["children"]:
        child = state[ref.removeprefix("IPY_MODEL_")]["state"]
        parts.append(str(child.get("value")))
    return " | ".join(parts)


async def saved_when(session: Session, path: str, check: Any, timeout: float = 20) -> Any:
    for _ in range(int(timeout * 10)):
        saved = await read_saved(session.server.root / path)
        if check(saved):
            return saved
        await asyncio.sleep(0.1)
    raise AssertionError(f"never saved as expected: {saved['metadata']}")


@pytest.mark.timeout(120)
async def test_a_tqdm_bar_is_saved_as_it_ended_and_survives_its_kernel(session: Session):
    path, [cell] = write_notebook(session.server.root, "tqdm.ipynb", [TQDM])
    kernel, room, client = await session.prepare(path)
    await session.execute(kernel, room, cell)
    await run_to_idle(client, cell)
    saved = await saved_when(session, path, lambda nb: "60/60" in json.dumps(model_state(nb)))
    # The bar's box, its three parts and what they name (layouts, styles): all saved.
    [box] = shown_models(saved)
    state = model_state(saved)
    assert state[box]["model_name"] == "HBoxModel"
    assert "60/60" in bar_text(saved) and "| 60 |" in bar_text(saved), bar_text(saved)
    for entry in state.values():
        for value in entry["state"].values():
            names = value if isinstance(value, list) else [value]
            for name in names:
                if isinstance(name, str) and name.startswith("IPY_MODEL_"):
                    assert name.removeprefix("IPY_MODEL_") in state
    nbformat.validate(saved)
    exported = json.loads(await session.export(path))
    assert model_state(exported) == model_state(saved)

    # A restart: the new process knows no widget, and what was saved stays.
    r = await session.http.post(f"/api/kernels/{kernel}/restart")
    assert r.status_code == 200
    await asyncio.sleep(1.5)
    await client.disconnect()
    await asyncio.sleep(2.5)  # the room closes, and saves
    again = await read_saved(session.server.root / path)
    assert model_state(again) == state
    # nbconvert's HTML shows the saved bar.
    out = session.server.root / "tqdm.html"
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--output", str(out),
                    str(session.server.root / path)], check=True, capture_output=True)  # fmt: skip
    html = out.read_text()
    opening = f'<script type="{STATE}">'
    assert opening in html, html[-2000:]
    embedded = json.loads(html.split(opening, 1)[1].split("</script>", 1)[0])
    assert embedded["state"] == model_state(again)
    out.unlink()


async def test_a_change_from_the_kernel_is_saved_and_a_cleared_view_forgotten(
    session: Session,
):
    path, cells = write_notebook(session.server.root, "slider.ipynb",
                                 [SLIDER, "s.value = 42", "print('no widgets')"])  # fmt: skip
    kernel, room, client = await session.prepare(path)
    for cell in cells[:2]:
        await session.execute(kernel, room, cell)
        await run_to_idle(client, cell)

    def slider_at(value: int) -> Any:
        def check(nb: Any) -> bool:
            models = shown_models(nb)
            return bool(models) and model_state(nb).get(models[0], {}).get("state", {}).get(
                "value") == value  # fmt: skip

        return check

    saved = await saved_when(session, path, slider_at(42))
    assert model_state(saved)[shown_models(saved)[0]]["model_name"] == "IntSliderModel"

    # The slider's cell runs again and shows something else: its state goes.
    del client.notebook.ycells[0]["source"][:]
    client.notebook.ycells[0]["source"] += "print('replaced')"
    await asyncio.sleep(0.3)
    await session.execute(kernel, room, cells[0])
    await run_to_idle(client, cells[0])
    await saved_when(session, path, lambda nb: "widgets" not in nb["metadata"])
    await client.disconnect()
