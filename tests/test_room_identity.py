"""One file, several rooms: a notebook opened as a notebook and as text ("Open With →
Editor") never share a history, and neither view writes what it did not load."""

from __future__ import annotations

import asyncio
import json

import nbformat
import pytest
from jupyter_ydoc import YNotebook, YUnicode
from pycrdt import Text

from .conftest import Server, Session, read_saved, write_notebook
from .test_execution import run_to_idle, stream_text
from .yclient import YClient


async def open_as_text(session: Session, path: str) -> YClient:
    """What JupyterLab's "Open With → Editor" does: a text:file session, then its room."""
    r = await session.http.put(
        f"/api/collaboration/session/{path}", json={"format": "text", "type": "file"}
    )
    assert r.status_code in (200, 201), r.text
    info = r.json()
    client = YClient(session.server.ws_url(f"text:file:{info['fileId']}", info["sessionId"]),
                     YUnicode())  # fmt: skip
    await client.connect()
    return client


async def settle(seconds: float = 1.0) -> None:
    """Longer than autosave_delay (0.2 s) and the file poll (1 s): a save would be done."""
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("notebook_room_open", [True, False])
async def test_opening_a_notebook_as_text_shows_its_json_and_never_empties_it(
    server: Server, session: Session, notebook_room_open: bool
):
    path, [cell] = write_notebook(server.root, f"victim-{notebook_room_open}.ipynb",
                                  ["print('kept')"])  # fmt: skip
    kernel, room, client = await session.prepare(path)
    await session.execute(kernel, room, cell)
    await run_to_idle(client, cell)
    await settle()  # the notebook room has saved its output and stored its history
    if not notebook_room_open:
        await client.disconnect()
        await asyncio.sleep(1.5)  # past room_cleanup_delay: the notebook room is closed
    on_disk = (server.root / path).read_text()
    assert stream_text(nbformat.reads(on_disk, 4).cells[0].outputs) == "kept\n"

    text = await open_as_text(session, path)
    # The editor shows the notebook's JSON, exactly the file.
    assert text.document.get() == on_disk
    await settle(1.5)
    assert (server.root / path).read_text() == on_disk
    await text.disconnect()
    await asyncio.sleep(1.5)  # the text room closes, and would save now
    assert (server.root / path).read_text() == on_disk

    # The notebook still opens with its cell and output.
    if notebook_room_open:
        await client.disconnect()
        await asyncio.sleep(1.5)
    again = await session.client(path)
    assert stream_text(again.outputs(cell)) == "kept\n"
    await again.disconnect()


async def test_a_text_room_edit_is_saved_and_the_notebook_room_reloads_it(
    server: Server, session: Session
):
    path, [cell] = write_notebook(server.root, "edited-as-text.ipynb", ["1 + 1"])
    notebook = await session.client(path)
    text = await open_as_text(session, path)
    source = text.document.ydoc.get("source", type=Text)
    # The user edits the JSON in the editor: the cell's source, as text.
    at = str(source).index('"1 + 1"')
    source.insert(at + 1, "40 + ")
    await notebook.wait_for(lambda: notebook.cell(cell)["source"] == "40 + 1 + 1", timeout=10)
    saved = await read_saved(server.root / path)
    assert saved.cells[0].source == "40 + 1 + 1"
    await text.disconnect()
    await notebook.disconnect()


async def test_output_saved_by_the_notebook_room_reaches_an_open_text_view(
    server: Server, session: Session
):
    slow = "import time\nfor i in range(8):\n    print(i, flush=True)\n    time.sleep(0.2)"
    path, [cell] = write_notebook(server.root, "running-as-text.ipynb", [slow])
    kernel, room, client = await session.prepare(path)
    await session.execute(kernel, room, cell)
    await client.wait_for(lambda: stream_text(client.outputs(cell)).startswith("0\n"))
    text = await open_as_text(session, path)  # while the cell runs
    await run_to_idle(client, cell)
    await settle(2.0)
    on_disk = (server.root / path).read_text()
    assert stream_text(nbformat.reads(on_disk, 4).cells[0].outputs) == "".join(
        f"{i}\n" for i in range(8)
    )
    # The text view followed the notebook room's saves; it wrote nothing of its own.
    await text.wait_for(lambda: text.document.get() == on_disk, timeout=5)
    await text.disconnect()
    await client.disconnect()
    await asyncio.sleep(1.5)
    assert json.loads((server.root / path).read_text()) == json.loads(on_disk)


async def test_a_cell_saved_as_text_without_its_type_leaves_the_notebook_room_whole(
    server: Server, session: Session
):
    """A typo in a key, saved on purpose in the editor: nbformat reads the JSON, but
    jupyter_server's trust check fails on a cell without ``cell_type``. The notebook room
    keeps its document and says so once; a new notebook room is refused with 4400, a
    client's fault and not the server's (no traceback in the log)."""
    path, [cell] = write_notebook(server.root, "typo-as-text.ipynb", ["print('typo')"])
    notebook = await session.client(path)
    text = await open_as_text(session, path)
    log_start = len(server.log())
    source = text.document.ydoc.get("source", type=Text)
    at = str(source).index('"cell_type"')
    source.insert(at + len('"cell_'), "x")  # "cell_xtype"
    for _ in range(100):
        if '"cell_xtype"' in (server.root / path).read_text():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the text room never saved its edit")
    await settle(2.5)  # two file polls, and a save of the notebook room would be done
    assert notebook.cell(cell)["cell_type"] == "code"
    assert '"cell_xtype"' in (server.root / path).read_text()  # the notebook did not save

    await text.disconnect()
    await notebook.disconnect()
    await asyncio.sleep(1.5)  # both rooms closed
    again = await session.open(path)
    refused = YClient(server.ws_url(f"json:notebook:{again['fileId']}", again["sessionId"]),
                      YNotebook())  # fmt: skip
    await refused.connect(wait_synced=False)
    await asyncio.wait_for(refused.closed.wait(), 10)
    assert refused.close_code == 4400, refused.close_reason
    r = await session.http.get(f"/api/ydoc-outputs/export/{path}")
    assert r.status_code == 400 and "cell_type" in r.json()["message"], r.text
    log = server.log()[log_start:]
    assert "Traceback" not in log, log
    assert log.count("cannot load") == 1, log
