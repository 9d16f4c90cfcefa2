"""Output widgets on the server: what a cell prints inside `with out:` goes into the widget,
in the document, the saved widget state, the export and the kernel's model, not into the
cell. Real server, real ipykernel and ipywidgets."""

from __future__ import annotations

import json
from typing import Any

import nbformat

from .conftest import Session, write_notebook
from .test_execution import run_to_idle
from .test_widget_state import model_state, saved_when

OUTPUT_WIDGET = (
    "import ipywidgets as w\nout = w.Output()\ndisplay(out)\n"
    "with out:\n    for i in range(3):\n        print('epoch', i)\n"
    "print('after')"
)
READ_BACK = "print(out.outputs)"


def output_models(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in state.values() if e["model_name"] == "OutputModel"]


def captured(state: dict[str, Any]) -> list[Any]:
    return [o for m in output_models(state) for o in m["state"].get("outputs", [])]


async def test_prints_inside_an_output_widget_go_into_the_widget(session: Session):
    path, [cell, read_back] = write_notebook(
        session.server.root, "output-widget.ipynb", [OUTPUT_WIDGET, READ_BACK]
    )
    kernel, room, client = await session.prepare(path)
    await session.execute(kernel, room, cell)
    await run_to_idle(client, cell)
    # In the document: the widget's view and what came after the block, nothing else.
    outputs = client.outputs(cell)
    texts = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert texts == "after\n", outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    # In the saved widget state, and so in the file.
    epochs = "epoch 0\nepoch 1\nepoch 2\n"
    saved = await saved_when(
        session, path, lambda nb: any(o.get("text") == epochs for o in captured(model_state(nb)))
    )
    [widget] = output_models(model_state(saved))
    assert widget["state"]["outputs"] == [
        {"output_type": "stream", "name": "stdout", "text": epochs}
    ]
    assert "epoch" not in json.dumps(saved["cells"][0]["outputs"])
    # The export holds the same, and is a valid notebook.
    exported = nbformat.reads(await session.export(path), as_version=4)
    nbformat.validate(exported)
    state = exported.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert captured(state) == [{"output_type": "stream", "name": "stdout", "text": epochs}]
    # The kernel's own model got them too, as from a page.
    await session.execute(kernel, room, read_back)
    await run_to_idle(client, read_back)
    [printed] = [o["text"] for o in client.outputs(read_back)]
    assert "epoch 2" in printed, printed
