"""Room lifetime, the session contract, authentication and bad input."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from jupyter_ydoc import YUnicode
from pycrdt import Text

from .conftest import TOKEN, Server, Session, read_saved, write_notebook
from .test_execution import run_to_idle, stream_text
from .yclient import YClient


async def test_room_outlives_its_clients_while_its_kernel_runs(server: Server, session: Session):
    # The server runs with room_cleanup_delay=1s; this cell runs for 3s with no client.
    path, [cell] = write_notebook(
        server.root,
        "lifetime.ipynb",
        ["import time\nfor i in range(15):\n    print(i, flush=True)\n    time.sleep(0.2)"],
    )
    kernel = await session.start_kernel()
    room = (await session.open(path))["room"]
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await asyncio.sleep(4.5)  # the run, then well past the clean-up delay
    expected = "".join(f"{i}\n" for i in range(15))
    # Saved to disk with no browser involved ...
    saved = await read_saved(server.root / path)
    assert saved.cells[0].outputs[0]["text"] == expected
    # ... and there for a client that connects afterwards.
    client = await session.client(path)
    assert stream_text(client.outputs(cell)) == expected
    assert client.cell(cell)["execution_count"] == 1
    await client.disconnect()


async def test_session_endpoint(server: Server, session: Session):
    path, _ = write_notebook(server.root, "session.ipynb", ["1"])
    first = await session.http.put(
        f"/api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
    )
    again = await session.http.put(
        f"/api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert first.json()["fileId"] == again.json()["fileId"]
    assert first.json()["sessionId"] == again.json()["sessionId"]
    assert set(first.json()) == {"format", "type", "fileId", "sessionId"}
    missing = await session.http.put(
        "/api/collaboration/session/nope.ipynb", json={"format": "json", "type": "notebook"}
    )
    assert missing.status_code == 404
    assert "message" in missing.json()


async def test_client_of_another_server_session_is_told_to_reload(server: Server, session: Session):
    path, _ = write_notebook(server.root, "reload.ipynb", ["1"])
    info = await session.open(path)
    client = YClient(server.ws_url(info["room"], "an-old-session"))
    await client.connect(wait_synced=False)
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.close_code == 1003
    reason = json.loads(client.close_reason or "")
    assert reason == {
        "reason": "unknown_session", "sessionId": info["sessionId"], "reloadable": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("room", "code"),
    [
        ("json:notebook:no-such-file-id", 4404),
        ("text:file:no-such-file-id", 4404),
        ("base64:blob:no-such-file-id", 4404),
        ("text:no-such-type:abc", 4400),
        ("json:file:abc", 4400),  # json is a notebook's format only
        ("text:notebook:abc", 4400),
        ("text:directory:abc", 4400),
        ("json:notebook:", 4400),
    ],
)
async def test_bad_rooms_are_closed_with_a_code(server: Server, session: Session, room, code):
    client = YClient(server.ws_url(room, None))
    await client.connect(wait_synced=False)
    await asyncio.wait_for(client.closed.wait(), 10)
    assert client.close_code == code


async def test_malformed_frames_close_only_the_sender(server: Server, session: Session):
    path, _ = write_notebook(server.root, "frames.ipynb", ["1"])
    good = await session.client(path)
    info = await session.open(path)
    url = server.ws_url(info["room"], info["sessionId"])
    for frame in [b"\x00\x02\xff\xff\xff", b"\x00\x07", "text frame", b"\x02\x99"]:
        async with websockets.connect(url) as ws:
            await ws.recv()  # the server's sync step 1
            await ws.send(frame)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400, frame
    # The well-behaved client is still served.
    assert not good.closed.is_set()
    source = good.notebook.ycells[0]["source"]
    source += "  # edited"
    cell_id = good.notebook.ycells[0]["id"]
    other = await session.client(path)
    await other.wait_for(lambda: other.cell(cell_id)["source"] == "1  # edited")
    await good.disconnect()
    await other.disconnect()


async def test_every_endpoint_requires_a_token(server: Server, session: Session):
    path, [cell] = write_notebook(server.root, "auth.ipynb", ["1"])
    info = await session.open(path)
    kernel = await session.start_kernel()
    async with server.http(token=None) as anonymous:
        checks = [
            await anonymous.put(
                f"/api/collaboration/session/{path}", json={"format": "json", "type": "notebook"}
            ),
            await anonymous.post(
                f"/api/kernels/{kernel}/execute",
                json={"cell_id": cell, "document_id": info["room"]},
            ),
            await anonymous.get(f"/api/ydoc-outputs/export/{path}"),
        ]
    for response in checks:
        assert response.status_code == 403, response.request.url
        assert "fileId" not in response.text and "cells" not in response.text
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(server.ws_url(info["room"], info["sessionId"], token=None)):
            pass
    assert refused.value.response.status_code == 403


async def test_bad_execute_requests_get_json_errors(server: Server, session: Session):
    path, cells = write_notebook(server.root, "bad.ipynb", ["print('still works')"])
    nb = json.loads((server.root / path).read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "md", "metadata": {}, "source": "# x"})
    (server.root / path).write_text(json.dumps(nb))
    room = (await session.open(path))["room"]
    kernel = await session.start_kernel()
    url = f"/api/kernels/{kernel}/execute"
    http = session.http
    cases = [
        (await http.post(url, content=b"{not json"), 400),
        (await http.post(url, json=["a", "list"]), 400),
        (await http.post(url, json={"cell_id": 3, "document_id": room}), 400),
        (await http.post(url, json={"document_id": room}), 400),
        (await http.post(url, content=b"x" * 100_000), 413),
        (await http.post(url, json={"cell_id": "no-such-cell", "document_id": room}), 404),
        (await http.post(url, json={"cell_id": "md", "document_id": room}), 400),
        (await http.post(url, json={"cell_id": cells[0], "document_id": "json:notebook:zzz"}), 404),
        (await http.post(url, json={"cell_id": cells[0], "document_id": "not-a-room"}), 400),
        (
            await http.post(
                "/api/kernels/00000000-0000-0000-0000-000000000000/execute",
                json={"cell_id": cells[0], "document_id": room},
            ),
            404,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.content[:80], response.text)
        assert response.json()["message"]
    # Nothing changed, and the server keeps serving.
    client = await session.client(path)
    assert client.outputs(cells[0]) == []
    assert (await session.execute(kernel, room, cells[0])).status_code == 202
    await run_to_idle(client, cells[0])
    assert stream_text(client.outputs(cells[0])) == "still works\n"
    await client.disconnect()


async def test_page_config_turns_on_server_side_execution(server: Server, session: Session):
    r = await session.http.get("/lab")
    assert r.status_code == 200
    start = r.text.index('id="jupyter-config-data"')
    config = json.loads(r.text[r.text.index(">", start) + 1 : r.text.index("</script>", start)])
    assert config["serverSideExecution"] == "true"


async def test_late_output_reopens_a_closed_room(server: Server, session: Session):
    # A thread keeps printing after its cell finished and after the room was closed
    # (clean-up delay 1s): the room is recreated and the output still lands in the cell.
    path, [cell] = write_notebook(
        server.root,
        "late.ipynb",
        [
            "import threading, time\n"
            "def later():\n    time.sleep(4)\n    print('from a thread', flush=True)\n"
            "threading.Thread(target=later).start()\nprint('cell done')"
        ],
    )
    kernel = await session.start_kernel()
    room = (await session.open(path))["room"]
    assert (await session.execute(kernel, room, cell)).status_code == 202
    text = ""
    for _ in range(150):
        await asyncio.sleep(0.1)
        saved = await read_saved(server.root / path)
        text = stream_text(saved.cells[0].outputs)
        if "from a thread" in text:
            break
    assert text == "cell done\nfrom a thread\n"


async def test_execution_goes_on_when_the_request_is_dropped(server: Server, session: Session):
    path, [cell] = write_notebook(
        server.root, "dropped.ipynb", ["import time\ntime.sleep(1)\nprint('finished')"]
    )
    kernel = await session.start_kernel()
    room = (await session.open(path))["room"]
    body = json.dumps({"cell_id": cell, "document_id": room}).encode()
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST /api/kernels/{kernel}/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: token {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()  # the browser reloads: nobody reads the answer
    client = await session.client(path)
    await run_to_idle(client, cell)
    assert stream_text(client.outputs(cell)) == "finished\n"
    await client.disconnect()


async def test_text_files_are_shared_and_saved(server: Server, session: Session):
    (server.root / "script.py").write_text("print('hi')\n")
    r = await session.http.put(
        "/api/collaboration/session/script.py", json={"format": "text", "type": "file"}
    )
    assert r.status_code == 201, r.text
    info = r.json()
    url = server.ws_url(f"text:file:{info['fileId']}", info["sessionId"])
    a = YClient(url, YUnicode())
    b = YClient(url, YUnicode())
    await a.connect()
    await b.connect()
    assert a.document.get() == "print('hi')\n"
    a.document.ydoc.get("source", type=Text).insert(0, "# edited\n")
    await b.wait_for(lambda: b.document.get().startswith("# edited\n"))
    for _ in range(100):
        if (server.root / "script.py").read_text() == "# edited\nprint('hi')\n":
            break
        await asyncio.sleep(0.1)
    assert (server.root / "script.py").read_text() == "# edited\nprint('hi')\n"
    await a.disconnect()
    await b.disconnect()
    unsupported = await session.http.put(
        "/api/collaboration/session/script.py", json={"format": "text", "type": "no-such-type"}
    )
    assert unsupported.status_code == 400
    assert "unsupported" in unsupported.json()["message"]


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/api/collaboration/timeline/x.ipynb?format=json&type=notebook", None, 404),
        ("GET", "/api/collaboration/timeline/x.ipynb?format=json", None, 400),
        ("GET", "/api/collaboration/timeline/x.ipynb?format=text&type=nope", None, 404),
        ("PUT", "/api/collaboration/fork/json:notebook:no-such-file-id", b"{}", 404),
        ("PUT", "/api/collaboration/fork/no-such-room", b"{}", 404),
        ("PUT", "/api/collaboration/fork/json:notebook:abc", b"[1]", 400),
        ("PUT", "/api/collaboration/fork/json:notebook:abc", b"{" * 70_000, 413),
        ("DELETE", "/api/collaboration/fork/no-such-fork?merge=true", None, 404),
        ("PUT", "/api/collaboration/undo_redo/json:notebook:abc?action=undo", b"", 400),
        ("PUT", "/api/collaboration/undo_redo/x?action=undo&steps=a&forkRoom=f", b"", 400),
        ("PUT", "/api/collaboration/undo_redo/x?action=jump&steps=1&forkRoom=f", b"", 400),
        ("PUT", "/api/collaboration/undo_redo/x?action=undo&steps=1&forkRoom=f", b"", 404),
    ],
)
async def test_bad_fork_and_timeline_requests_get_a_json_error(
    server: Server, session: Session, method: str, url: str, body: bytes | None, status: int
):
    r = await session.http.request(method, url, content=body)
    assert r.status_code == status, r.text
    assert r.json()["message"]
    assert server.proc.poll() is None


async def test_fresh_clients_get_the_document_as_it_is_now(server: Server, session: Session):
    """The whole-document answer to fresh clients is encoded once and shared, and the
    changes since follow it in one update: after each change, small or large, a new
    client holds exactly what the others hold."""
    path, [cell] = write_notebook(server.root, "fresh.ipynb", ["1"])
    first = await session.client(path)
    second = await session.client(path)  # the same base as the first
    expected = "1"
    for edit in [f" + {i}" for i in range(20)] + ["#" + "x" * 200_000, " + 20", " + 21"]:
        source = first.notebook.ycells[0]["source"]
        source.insert(len(source), edit)
        expected += edit
        await second.wait_for(lambda want=expected: second.cell(cell)["source"] == want)
        fresh = await session.client(path)
        # Sync step 2, then the changes since the server encoded the document: the
        # client's copy must become the others' (and wait_for fails if it does not).
        await fresh.wait_for(lambda c=fresh, want=expected: c.cell(cell)["source"] == want, 5)
        await fresh.disconnect()
    for client in (first, second):
        await client.disconnect()


async def test_timelines_are_bounded(server: Server, session: Session):
    """Each timeline holds a copy of a document and its history, and a page may ask for
    one and never come back: past MAX_TIMELINES the oldest ends (404 from then on)."""
    from ydoc_outputs.rooms.forks import MAX_TIMELINES

    path, _ = write_notebook(server.root, "timelines.ipynb", ["1"])
    client = await session.client(path)
    rooms = []
    for _ in range(MAX_TIMELINES + 1):
        r = await session.http.get(f"/api/collaboration/timeline/{path}?format=json&type=notebook")
        assert r.status_code == 200, r.text
        rooms.append(r.json()["forkRoom"])
    room = r.json()["roomId"]

    async def step(fork_room: str) -> int:
        r = await session.http.put(
            f"/api/collaboration/undo_redo/{room}?action=redo&steps=1&forkRoom={fork_room}"
        )
        return r.status_code

    assert await step(rooms[0]) == 404
    assert await step(rooms[-1]) == 200
    await client.disconnect()
