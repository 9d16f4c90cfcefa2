"""Where the time goes between a Shift+Enter and its first output: ``python -m benchmarks.hops``.

A server with timestamps at each hop (benchmarks/hops_server.py) and one client of a
notebook's room. Each sample posts ``api/kernels/{id}/execute`` for a cell that prints
once, on a warm kernel, and waits for the output in the client's document. Every hop
is read from the same system-wide monotonic clock, in both processes:

  page -> handler       the POST until the handler runs (client, HTTP, Tornado)
  handler -> sent       authorization, cell lookup, queue, the next cell's pick
  write + request       the cell cleared and marked running, ``execute_request`` sent
  kernel                until the iopub message with the output is read by the server
  pump                  until the batch is handed to the runner
  transaction           the Y transaction that writes it, until its update is sent
  websocket send        handing the update to the client's socket
  network + client      until the client applied it

Medians of ``SAMPLES`` runs on a notebook's first code cell and on its 50th. Prints a
table; not a test (a shared machine is noisy).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pycrdt import Array, Map

from tests.conftest import Server, Session, write_notebook
from tests.test_execution import run_to_idle

from .report import Table

SAMPLES = 30

HOPS = [
    ("page -> handler", "post", "handler"),
    ("handler -> sent", "handler", "send"),
    ("write + request", "send", "send.done"),
    ("kernel", "send.done", "iopub.wait.done"),
    ("pump", "iopub.wait.done", "dispatch"),
    ("transaction", "dispatch", "websocket"),
    ("websocket send", "websocket", "websocket.done"),
    ("network + client", "websocket.done", "output"),
]


def _parse(text: str) -> list[tuple[int, str]]:
    """The ``{ns} {hop}`` lines of the log, in time order."""
    events = []
    for line in text.splitlines():
        stamp, _, hop = line.partition(" ")
        if stamp.isdigit() and hop:
            events.append((int(stamp), hop))
    return sorted(events)


def _breakdown(events: list[tuple[int, str]]) -> dict[str, float] | None:
    """The hops of one sample (its events from ``post`` to ``output``), in ms. Each hop
    ends at the first event of its kind after the previous hop; the kernel hop at the
    last read of iopub before the dispatch that carried the output."""
    stamps: dict[str, int] = {}
    shown = next((i for i, (_, hop) in enumerate(events) if hop == "output"), len(events))
    events = events[: shown + 1]  # what came after the output (the idle) is not its path
    last_dispatch = max((i for i, (_, hop) in enumerate(events) if hop == "dispatch"), default=-1)
    if last_dispatch < 0:
        return None
    read = [i for i, (_, hop) in enumerate(events[:last_dispatch]) if hop == "iopub.wait.done"]
    if not read:
        return None
    stamps["iopub.wait.done"] = events[read[-1]][0]
    stamps["dispatch"] = events[last_dispatch][0]
    for name in ("post", "handler", "send", "send.done"):
        found = next((t for t, hop in events if hop == name), None)
        if found is None:
            return None
        stamps[name] = found
    after = events[last_dispatch:]
    for name in ("websocket", "websocket.done", "output"):
        found = next((t for t, hop in after if hop == name and t >= stamps["dispatch"]), None)
        if found is None:
            return None
        stamps[name] = found
        after = [(t, hop) for t, hop in after if t >= found]
    return {label: (stamps[end] - stamps[start]) / 1e6 for label, start, end in HOPS} | {
        "total": (stamps["output"] - stamps["post"]) / 1e6
    }


async def _samples(session: Session, client: Any, kernel: str, room: str, cell: Map[Any],
                   cell_id: str, log: Path) -> list[dict[str, float]]:  # fmt: skip
    results = []
    outputs: Array[Any] = cell["outputs"]
    for _ in range(SAMPLES):
        mark = log.stat().st_size
        seen = asyncio.Event()
        cleared = [False]  # the run's start clears the last run's output first

        def listener(outputs: Array[Any] = outputs, seen: asyncio.Event = seen,
                     cleared: list[bool] = cleared) -> None:  # fmt: skip
            if seen.is_set():
                return
            if not len(outputs):
                cleared[0] = True
            elif cleared[0]:
                with log.open("a") as f:
                    f.write(f"{time.monotonic_ns()} output\n")
                seen.set()

        client.listeners.append(listener)
        with log.open("a") as f:
            f.write(f"{time.monotonic_ns()} post\n")
        response = await session.execute(kernel, room, cell_id)
        assert response.status_code == 202, response.text
        await asyncio.wait_for(seen.wait(), 30)
        client.listeners.remove(listener)
        await run_to_idle(client, cell_id)
        with log.open() as f:
            f.seek(mark)
            events = _parse(f.read())
        found = _breakdown(events)
        if found is not None:
            results.append(found)
    return results


async def run() -> Table:
    with tempfile.TemporaryDirectory(prefix="ydoc-outputs-hops-") as tmp:
        root, home, log = Path(tmp) / "root", Path(tmp) / "home", Path(tmp) / "hops.log"
        root.mkdir()
        home.mkdir()
        log.touch()
        server = Server(
            root, home, [],
            command=[sys.executable, "-m", "benchmarks.hops_server"],
            env={"YDOC_HOPS_LOG": str(log), "PYTHONPATH": os.getcwd()},
        )  # fmt: skip
        session = Session(server, server.http())
        try:
            sources = ["import time"] + ["print(time.time())"] * 50
            path, cells = write_notebook(root, "hops.ipynb", sources)
            kernel, room, client = await session.prepare(path)
            await session.execute(kernel, room, cells[0])
            await run_to_idle(client, cells[0])
            columns: dict[str, list[dict[str, float]]] = {}
            for label, index in (("1st cell", 1), ("50th cell", 50)):
                ycell = client.notebook.ycells[index]
                columns[label] = await _samples(
                    session, client, kernel, room, ycell, cells[index], log
                )
            await client.disconnect()
        finally:
            await session.close()
            server.stop()
    table = Table(
        "HOPS: Shift+Enter to first output in a client, by hop (median ms)",
        ["hop", *columns],
    )
    for label in [h[0] for h in HOPS] + ["total"]:
        table.rows.append(
            [label, *(f"{statistics.median(s[label] for s in c):.2f}" for c in columns.values())]
        )
    table.notes.append(
        f"samples per column: {', '.join(str(len(c)) for c in columns.values())}; "
        "medians of each hop do not add up exactly to the median total"
    )
    return table


def main() -> None:
    print(asyncio.run(run()).render())


if __name__ == "__main__":
    main()
