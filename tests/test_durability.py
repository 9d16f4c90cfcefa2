"""Output survives the server: the Y update store, a SIGKILL and a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from .conftest import Server, Session, write_notebook
from .test_execution import stream_text
from .yclient import YClient

# Each line carries the time it was printed, to measure what a crash lost.
TICKS = (
    "import time\nfor i in range(200):\n"
    "    print(f'{i} {time.time():.3f}', flush=True)\n    time.sleep(0.05)"
)


def start(root: Path, home: Path) -> Server:
    return Server(root, home, ["--YdocOutputsApp.autosave_delay=0.5"])


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    return root, home


async def test_sigkill_loses_at_most_the_last_second(dirs: tuple[Path, Path]):
    root, home = dirs
    path, [cell] = write_notebook(root, "crash.ipynb", [TICKS])
    first = start(root, home)
    session = Session(first, first.http())
    try:
        kernel = await session.start_kernel()
        info = await session.open(path)
        client = YClient(first.ws_url(info["room"], info["sessionId"]))
        await client.connect()
        assert (await session.execute(kernel, info["room"], cell)).status_code == 202
        await client.wait_for(lambda: stream_text(client.outputs(cell)).startswith("0 "))
        await asyncio.sleep(2)
        killed_at = time.time()
        first.kill()
    finally:
        await session.http.aclose()
    await asyncio.wait_for(client.closed.wait(), 10)

    second = start(root, home)
    try:
        # The client still holds its old document and reconnects with its old session id.
        await client.reconnect(second.ws_url(info["room"], info["sessionId"]))
        fresh_session = Session(second, second.http())
        fresh = await fresh_session.client(path)
        for c in (client, fresh):
            lines = stream_text(c.outputs(cell)).splitlines()
            numbers = [int(line.split()[0]) for line in lines]
            assert numbers == list(range(len(numbers))), "lines missing, repeated or out of order"
            printed_at = [float(line.split()[1]) for line in lines]
            last = printed_at[-1]
            print(f"loss window: lines up to {killed_at - last:.3f}s before the kill were kept")
            assert killed_at - last < 1.0
            errors = [o for o in c.outputs(cell) if o["output_type"] == "error"]
            assert [e["ename"] for e in errors] == ["ServerRestarted"]
            assert c.state(cell) == "idle"
        assert len(client.notebook.ycells) == len(fresh.notebook.ycells) == 1
        assert client.outputs(cell) == fresh.outputs(cell)
        await client.disconnect()
        await fresh.disconnect()
        await fresh_session.close()
    finally:
        second.stop()


async def test_restart_keeps_the_document_and_accepts_old_sessions(dirs: tuple[Path, Path]):
    root, home = dirs
    path, [cell] = write_notebook(root, "restart.ipynb", ["print('kept')"])
    first = start(root, home)
    session = Session(first, first.http())
    kernel = await session.start_kernel()
    info = await session.open(path)
    client = YClient(first.ws_url(info["room"], info["sessionId"]))
    await client.connect()
    await session.execute(kernel, info["room"], cell)
    await client.wait_for(lambda: client.state(cell) == "idle" and bool(client.outputs(cell)))
    await session.close()
    first.stop()  # a clean shutdown saves and closes every room
    await asyncio.wait_for(client.closed.wait(), 10)

    second = start(root, home)
    try:
        await client.reconnect(second.ws_url(info["room"], info["sessionId"]))
        assert len(client.notebook.ycells) == 1
        assert client.outputs(cell) == [
            {"output_type": "stream", "name": "stdout", "text": "kept\n"}
        ]
        await client.disconnect()
        # A session id this store never saw must still reload.
        stranger = YClient(second.ws_url(info["room"], "never-seen"))
        await stranger.connect(wait_synced=False)
        await asyncio.wait_for(stranger.closed.wait(), 10)
        assert stranger.close_code == 1003
    finally:
        second.stop()
