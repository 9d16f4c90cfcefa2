"""Server-side execution end to end: real server, real ipykernel, real websocket clients."""

from __future__ import annotations

import asyncio

import nbformat

from .conftest import Server, Session, write_notebook
from .yclient import YClient

COUNT_30 = (
    "import time\nfor i in range(30):\n    print(f'line {i}', flush=True)\n    time.sleep(0.2)"
)


def stream_text(outputs: list[dict]) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream")


async def run_to_idle(client: YClient, cell_id: str, timeout: float = 60) -> None:
    """Wait until the cell has run (it got an execution count) and is idle again."""
    await client.wait_for(
        lambda: client.state(cell_id) == "idle" and client.cell(cell_id)["execution_count"],
        timeout,
    )


async def test_output_written_while_no_client_is_connected(server: Server, session: Session):
    path, [cell] = write_notebook(server.root, "disconnect.ipynb", [COUNT_30])
    kernel = await session.start_kernel()
    a = await session.client(path)
    room = (await session.open(path))["room"]
    r = await session.execute(kernel, room, cell)
    assert r.status_code == 202, r.text
    # The first line marks the start of the run (a new kernel takes a moment to start).
    await a.wait_for(lambda: stream_text(a.outputs(cell)).startswith("line 0\n"))
    await asyncio.sleep(1)
    await a.disconnect()
    seen_by_a = stream_text(a.outputs(cell))
    assert 0 < seen_by_a.count("\n") < 30  # A really left in the middle of the run

    # Nobody is connected; wait for the kernel to become idle.
    await _wait_kernel_idle(session, kernel)

    b = await session.client(path)
    outputs = b.outputs(cell)
    assert [o["output_type"] for o in outputs] == ["stream"]
    assert outputs[0]["name"] == "stdout"
    assert outputs[0]["text"] == "".join(f"line {i}\n" for i in range(30))
    assert b.cell(cell)["execution_count"] == 1
    assert b.state(cell) == "idle"
    await b.disconnect()


async def _wait_kernel_idle(session: Session, kernel: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    await asyncio.sleep(0.5)
    while True:
        r = await session.http.get(f"/api/kernels/{kernel}")
        if r.json()["execution_state"] == "idle":
            return
        assert asyncio.get_running_loop().time() < deadline, "kernel never became idle"
        await asyncio.sleep(0.2)


async def test_two_clients_converge_and_equal_the_export(server: Server, session: Session):
    path, [cell] = write_notebook(
        server.root,
        "converge.ipynb",
        ["import time\nfor i in range(20):\n    print(i, flush=True)\n    time.sleep(0.05)\n"
         "display({'text/plain': 'done'}, raw=True)\n42"],
    )  # fmt: skip
    kernel = await session.start_kernel()
    a = await session.client(path)
    b = await session.client(path)
    room = (await session.open(path))["room"]
    assert (await session.execute(kernel, room, cell)).status_code == 202
    await run_to_idle(a, cell)
    await run_to_idle(b, cell)
    assert a.outputs(cell) == b.outputs(cell)
    assert [o["output_type"] for o in a.outputs(cell)] == [
        "stream", "display_data", "execute_result",
    ]  # fmt: skip
    exported = nbformat.reads(await session.export(path), as_version=4)
    assert exported.cells[0].outputs == a.outputs(cell)
    await a.disconnect()
    await b.disconnect()


async def test_export_is_valid_and_equals_disk_after_autosave(server: Server, session: Session):
    path, cells = write_notebook(
        server.root,
        "export.ipynb",
        ["print('hello')", "from IPython.display import HTML\nHTML('<b>x</b>')", "1/0"],
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    for cell in cells:
        await run_to_idle(client, cell)
    text = await session.export(path)
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    # Equal to the Y document's state ...
    assert [c.outputs for c in nb.cells] == [client.outputs(c) for c in cells]
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    # ... and, once autosaved, byte-for-byte what is on disk.
    on_disk = server.root / path
    for _ in range(100):
        if on_disk.read_text() == text:
            break
        await asyncio.sleep(0.1)
    assert on_disk.read_text() == text
    await client.disconnect()


async def test_export_is_served_as_a_notebook_and_its_errors_as_json(
    server: Server, session: Session
):
    # What a browser or `curl -OJ` uses to tell a notebook from any JSON.
    path, _ = write_notebook(server.root, "typed.ipynb", ["1"])
    from_disk = await session.http.get(f"/api/ydoc-outputs/export/{path}")  # no room yet
    assert from_disk.status_code == 200, from_disk.text
    assert from_disk.headers["content-type"] == "application/x-ipynb+json"
    client = await session.client(path)
    from_room = await session.http.get(f"/api/ydoc-outputs/export/{path}")
    assert from_room.status_code == 200, from_room.text
    assert from_room.headers["content-type"] == "application/x-ipynb+json"
    assert from_room.text == from_disk.text
    await client.disconnect()
    missing = await session.http.get("/api/ydoc-outputs/export/nope.ipynb")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert "nope.ipynb" in missing.json()["message"]


async def test_an_error_cancels_the_cells_queued_after_it(server: Server, session: Session):
    path, cells = write_notebook(
        server.root, "stop.ipynb", ["import time\ntime.sleep(0.5)\n1/0", "print('never')"]
    )
    kernel, room, client = await session.prepare(path)
    for cell in cells:
        assert (await session.execute(kernel, room, cell)).status_code == 202
    await run_to_idle(client, cells[0])
    await client.wait_for(lambda: client.state(cells[1]) == "idle")
    assert client.outputs(cells[0])[0]["ename"] == "ZeroDivisionError"
    assert client.outputs(cells[1]) == []
    assert client.cell(cells[1])["execution_count"] is None
    await client.disconnect()
