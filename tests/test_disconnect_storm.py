"""Nothing lost in a disconnect storm: clients come and go while a cell prints 20,000 lines.

Five clients disconnect and reconnect at random (seeded) moments, hundreds of times,
like browser tabs on a flaky network: a clean close or a dropped connection, sometimes
before the sync even finished, then a fresh session PUT and a new websocket, keeping
their copy of the document (the provider reconnecting) or starting empty (a reload).
Afterwards every client, the export and the file on disk hold each line exactly once,
in order. Set ``YDOC_STORM_SEED`` to replay a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass

import nbformat
from jupyter_ydoc import YNotebook

from ydoc_outputs.outputs import continuation

from .conftest import Server, Session, read_saved, write_notebook
from .test_execution import stream_text
from .yclient import YClient

CLIENTS = 5
LINES = 20_000
MIN_RECONNECTS = 200
#: Of which at least this many while the cell printed, however slow the machine.
MIN_RECONNECTS_DURING_RUN = 50
EXPECTED = "".join(f"{i}\n" for i in range(LINES))
#: One message per line (flush), with a pause now and then: about 10-20 s of output.
CODE = (
    f"import time\nfor i in range({LINES}):\n    print(i, flush=True)\n"
    "    if i % 100 == 99:\n        time.sleep(0.05)"
)


@dataclass
class Stats:
    reconnects: int = 0
    during_run: int = 0
    aborted: int = 0
    unsynced: int = 0
    kept: int = 0
    #: When a client first saw the run finished (monotonic).
    finished_at: float = 0.0

    def count(self, *, during_run: bool) -> None:
        self.reconnects += 1
        self.during_run += during_run


def finished(client: YClient, cell: str) -> bool:
    return client.state(cell) == "idle" and bool(client.cell(cell)["execution_count"])


def assert_prefix(client: YClient, cell: str) -> None:
    """Mid-run, a client holds a prefix of the output: nothing doubled or reordered."""
    text = stream_text(client.outputs(cell))
    assert EXPECTED.startswith(text), f"not a prefix: ...{text[-80:]!r}"


async def sees_finished(client: YClient, cell: str, seconds: float) -> bool:
    """Stay connected for ``seconds``; return True early if the run is seen finished."""
    try:
        await client.wait_for(lambda: finished(client, cell), seconds)
    except asyncio.TimeoutError:
        return False
    return True


async def drop(client: YClient, rng: random.Random, stats: Stats) -> None:
    """Disconnect: a clean close, or the connection just breaks (no close handshake)."""
    if rng.random() < 0.3:
        stats.aborted += 1
        if client._sub is not None:
            client.document.ydoc.unobserve(client._sub)
            client._sub = None
        client._ws.transport.abort()
        if client._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await client._task
    else:
        await client.disconnect()


async def reconnect(
    session: Session, path: str, document: YNotebook | None, *, wait_synced: bool = True
) -> YClient:
    """Connect like the browser does: a fresh session PUT, then a new websocket."""
    info = await session.open(path)
    client = YClient(session.server.ws_url(info["room"], info["sessionId"]), document)
    await client.connect(wait_synced=wait_synced)
    return client


async def storm_client(
    session: Session, path: str, cell: str, rng: random.Random, stats: Stats, done: asyncio.Event
) -> YClient:
    """Come and go until the cell has finished and the storm has had its count of
    reconnects (a slow machine finishes the run first); return the client, synced."""
    client = await reconnect(session, path, None)
    while not (done.is_set() and stats.reconnects >= MIN_RECONNECTS):
        # Stay connected a little while; whoever sees the run finished says so.
        if await sees_finished(client, cell, rng.uniform(0.0, 0.15)) and not done.is_set():
            stats.finished_at = time.monotonic()
            done.set()
        assert_prefix(client, cell)
        await drop(client, rng, stats)
        await asyncio.sleep(rng.uniform(0.0, 0.05))  # away from the room for a while
        document = client.notebook if rng.random() < 0.5 else None
        stats.kept += document is not None
        if rng.random() < 0.15:
            # Gone again before the sync finished (a reload in quick succession).
            stats.unsynced += 1
            half = await reconnect(session, path, document, wait_synced=False)
            await drop(half, rng, stats)
            stats.count(during_run=not done.is_set())
        client = await reconnect(session, path, document)
        stats.count(during_run=not done.is_set())
        assert_prefix(client, cell)
    return client


async def test_disconnect_storm_loses_and_doubles_nothing(server: Server, session: Session):
    seed = int(os.environ.get("YDOC_STORM_SEED", random.SystemRandom().randrange(2**32)))
    print(f"disconnect storm seed: {seed} (YDOC_STORM_SEED={seed} replays it)")
    path, [cell] = write_notebook(server.root, "storm.ipynb", [CODE])
    kernel = await session.start_kernel()
    room = (await session.open(path))["room"]
    stats = Stats()
    done = asyncio.Event()
    started = time.monotonic()
    assert (await session.execute(kernel, room, cell)).status_code == 202
    clients = await asyncio.wait_for(
        asyncio.gather(
            *(
                storm_client(session, path, cell, random.Random(seed * 31 + k), stats, done)
                for k in range(CLIENTS)
            )
        ),
        timeout=75,
    )
    storm_time = time.monotonic() - started
    print(
        f"storm: {stats.reconnects} reconnects in {storm_time:.1f} s, {stats.during_run} "
        f"of them during the run of {stats.finished_at - started:.1f} s "
        f"({stats.aborted} dropped connections, "
        f"{stats.unsynced} left before syncing, {stats.kept} kept their document)"
    )
    assert stats.reconnects >= MIN_RECONNECTS
    assert stats.during_run >= MIN_RECONNECTS_DURING_RUN

    # A final reconnect of each client, keeping its document, one at a time so that
    # the room always has a client; then every copy holds each line once, in order.
    for k, client in enumerate(clients):
        await client.disconnect()
        clients[k] = client = await reconnect(session, path, client.notebook)
        assert finished(client, cell)
        outputs = client.outputs(cell)
        # Streams only, their 64 KB segments kept apart by empty continuation outputs.
        assert all(o["output_type"] == "stream" or o == continuation() for o in outputs)
        assert stream_text(outputs) == EXPECTED, f"client {k}"
        assert client.cell(cell)["execution_count"] == 1
    assert clients[0].outputs(cell) == clients[-1].outputs(cell)

    exported = await session.export(path)
    nb = nbformat.reads(exported, as_version=4)
    assert stream_text(nb.cells[0].outputs) == EXPECTED
    assert nb.cells[0].outputs == clients[0].outputs(cell)
    # Autosave runs 0.2 s after a change; wait for the file to catch up with the export.
    on_disk = server.root / path
    deadline = time.monotonic() + 20
    while on_disk.read_text() != exported:
        assert time.monotonic() < deadline, "autosave never wrote the final state"
        await asyncio.sleep(0.1)
    assert stream_text((await read_saved(on_disk)).cells[0].outputs) == EXPECTED
    for client in clients:
        await client.disconnect()
