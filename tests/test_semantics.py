"""Output semantics through the whole path: kernel -> server -> Y document -> client."""

from __future__ import annotations

import asyncio
import re

from .conftest import Server, Session, write_notebook
from .test_execution import run_to_idle


async def run_cells(session: Session, path: str, cells: list[str]):
    kernel, room, client = await session.prepare(path)
    for cell in cells:
        r = await session.execute(kernel, room, cell)
        assert r.status_code == 202, r.text
    for cell in cells:
        await run_to_idle(client, cell)
    return client


async def test_display_updates_in_place_and_across_cells(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "display.ipynb",
        [
            "h = display('x', display_id=True)\nfor i in range(50):\n    h.update(i)",
            "g = display('first', display_id='shared')\nprint('after')",
            "from IPython.display import update_display\n"
            "update_display('changed', display_id='shared')",
        ],
    )
    client = await run_cells(session, path, cells)
    first = client.outputs(cells[0])
    assert len(first) == 1
    assert first[0]["output_type"] == "display_data"
    assert first[0]["data"]["text/plain"] == "49"
    # The update from the third cell changed the second cell, in place, not at the end.
    second = client.outputs(cells[1])
    assert [o["output_type"] for o in second] == ["display_data", "stream"]
    assert second[0]["data"]["text/plain"] == "'changed'"
    assert second[1]["text"] == "after\n"
    assert client.outputs(cells[2]) == []
    await client.disconnect()


async def test_progress_bar_collapses_to_its_last_line(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "progress.ipynb",
        ["import sys\nfor i in range(2000):\n    sys.stdout.write(f'\\r{i}/2000')\n"
         "    sys.stdout.flush()"],
    )  # fmt: skip
    client = await run_cells(session, path, cells)
    outputs = client.outputs(cells[0])
    assert len(outputs) == 1
    assert outputs[0]["output_type"] == "stream"
    assert outputs[0]["text"] == "1999/2000"
    await client.disconnect()


async def test_clear_output_wait_in_a_loop_leaves_the_last_print(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "clear.ipynb",
        ["from IPython.display import clear_output\nfor i in range(100):\n"
         "    clear_output(wait=True)\n    print(f'step {i}', flush=True)",
         "print('gone')\nfrom IPython.display import clear_output\nclear_output()\nprint('kept')"],
    )  # fmt: skip
    client = await run_cells(session, path, cells)
    assert client.outputs(cells[0]) == [
        {"output_type": "stream", "name": "stdout", "text": "step 99\n"}
    ]
    assert client.outputs(cells[1]) == [
        {"output_type": "stream", "name": "stdout", "text": "kept\n"}
    ]
    await client.disconnect()


async def test_clear_output_wait_never_shows_an_empty_cell(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "flicker.ipynb",
        ["import time\nfrom IPython.display import clear_output\nfor i in range(50):\n"
         "    clear_output(wait=True)\n    print(i, flush=True)\n    time.sleep(0.01)"],
    )  # fmt: skip
    kernel, room, client = await session.prepare(path)
    empty_states = []
    seen_first = []

    def watch() -> None:
        outputs = client.outputs(cells[0])
        if outputs:
            seen_first.append(True)
        elif seen_first and client.state(cells[0]) == "running":
            empty_states.append(True)

    client.listeners.append(watch)
    await session.execute(kernel, room, cells[0])
    await run_to_idle(client, cells[0])
    assert seen_first
    assert empty_states == []
    assert client.outputs(cells[0])[0]["text"] == "49\n"
    await client.disconnect()


async def test_exception_gives_an_error_output_and_idle(server: Server, session: Session):
    path, cells = write_notebook(
        server.root, "error.ipynb", ["def f():\n    raise ValueError('boom')\nf()"]
    )
    client = await run_cells(session, path, cells)
    [error] = client.outputs(cells[0])
    assert error["output_type"] == "error"
    assert error["ename"] == "ValueError"
    assert error["evalue"] == "boom"
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    assert "raise ValueError('boom')" in traceback
    assert client.state(cells[0]) == "idle"
    await client.disconnect()


async def test_input_is_refused_with_a_clear_error(server: Server, session: Session):
    path, cells = write_notebook(server.root, "stdin.ipynb", ["x = input('name? ')", "1 + 1"])
    client = await run_cells(session, path, cells[:1])
    [error] = client.outputs(cells[0])
    assert error["output_type"] == "error"
    assert error["ename"] == "StdinNotImplementedError"
    assert "input" in error["evalue"]
    await client.disconnect()


async def test_cells_queued_by_an_api_client_run_in_document_order(
    server: Server, session: Session
):
    path, cells = write_notebook(
        server.root,
        "order.ipynb",
        ["import time\ntime.sleep(0.3)\nx = 1", "x += 1\nx", "x * 10"],
    )
    kernel, room, client = await session.prepare(path)
    # An API client (no page marks, no send times): what is queued behind a running
    # cell runs in document order. (Run All as the page drives it: test_run_order.py.)
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await client.wait_for(lambda: client.state(cells[0]) == "running")
    results = await asyncio.gather(*(session.execute(kernel, room, c) for c in reversed(cells[1:])))
    assert all(r.status_code == 202 for r in results)
    for cell in cells:
        await run_to_idle(client, cell)
    assert [client.cell(c)["execution_count"] for c in cells] == [1, 2, 3]
    assert client.outputs(cells[1])[0]["data"]["text/plain"] == "2"
    assert client.outputs(cells[2])[0]["data"]["text/plain"] == "20"
    await client.disconnect()
