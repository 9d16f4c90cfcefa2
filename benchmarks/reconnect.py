"""RECONNECT: a fresh client's full sync of a big notebook, against ``GET api/contents``.

Notebooks holding 1, 10 and 100 MB of stream output (64 KB segments, 4 MB per cell, as
the server writes them) are put on disk. For each, one client keeps the room open; then,
in turns, a new y-websocket client connects and syncs the whole document (until its
sync step 2 is applied), and ``GET api/contents/{path}`` fetches and parses the same
notebook, which is what a classic page load costs. The first sync, which opens the room
from the file, is shown apart.
"""

from __future__ import annotations

import json
import time
from typing import Any

import websockets
from pycrdt import Doc, create_sync_message, handle_sync_message

from .alternatives import AlternativeServer
from .harness import ExtensionServer, Options
from .report import Table, median

__all__ = ["run"]

SEGMENT = 65536
SYNC_STEP2 = b"\x00\x01"
#: The alternatives run side by side (see alternatives.py).
ALTERNATIVES = ("nbmodel", "documents")
CELL_BYTES = 4 * 1024 * 1024


def big_notebook(megabytes: int) -> dict[str, Any]:
    """A notebook with ``megabytes`` MB of printed lines, in cells of at most 4 MB."""
    line = "".join(f"{i % 10}" for i in range(79)) + "\n"
    segment = line * (SEGMENT // len(line))
    remaining = megabytes * 1024 * 1024
    cells: list[dict[str, Any]] = []
    while remaining > 0:
        size = min(remaining, CELL_BYTES)
        remaining -= size
        outputs = [
            {"output_type": "stream", "name": "stdout", "text": segment}
            for _ in range(max(1, size // len(segment)))
        ]
        cells.append(
            {
                "cell_type": "code",
                "id": f"cell-{len(cells)}",
                "metadata": {},
                "source": "for i in range(10**6):\n    print(i)",
                "outputs": outputs,
                "execution_count": len(cells) + 1,
            }
        )
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


async def _sync_once(url: str) -> tuple[float, int]:
    """Connect a bare y-websocket client and time its full sync; the document's size.

    The client is a plain pycrdt ``Doc``: the test suite's ``YClient`` also re-encodes
    every update it applies (to forward local edits), which would double the client's
    share of the figure.
    """
    doc: Doc[Any] = Doc()
    start = time.perf_counter()
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(create_sync_message(doc))
        while True:
            message = await ws.recv()
            assert isinstance(message, bytes)
            if message[:2] == SYNC_STEP2:
                handle_sync_message(message[1:], doc)
                break
        seconds = time.perf_counter() - start
    return seconds, len(doc.get_update())


async def _contents_once(server: ExtensionServer | AlternativeServer, path: str) -> float:
    start = time.perf_counter()
    response = await server.session.http.get(f"/api/contents/{path}", params={"content": "1"})
    response.raise_for_status()
    json.loads(response.content)
    return time.perf_counter() - start


async def _measure(
    server: ExtensionServer | AlternativeServer, name: str, megabytes: int, repeat: int
) -> list[str]:
    path = f"big-{megabytes}.ipynb"
    (server.root / path).write_text(json.dumps(big_notebook(megabytes)))
    file_mb = (server.root / path).stat().st_size / 1e6
    start = time.perf_counter()
    holder = await server.connect(path)  # opens the room from disk, then keeps it open
    first = time.perf_counter() - start
    url = holder.client.url
    syncs: list[float] = []
    contents: list[float] = []
    doc_bytes = 0
    for i in range(repeat):
        if i % 2:
            contents.append(await _contents_once(server, path))
        seconds, doc_bytes = await _sync_once(url)
        syncs.append(seconds)
        if not i % 2:
            contents.append(await _contents_once(server, path))
    await holder.client.disconnect()
    sync, get = median(syncs), median(contents)
    return [
        f"{megabytes} MB of output [{name}]",
        f"{file_mb:.1f}",
        f"{doc_bytes / 1e6:.1f}",
        f"{first:.3f}",
        f"{sync:.3f}",
        f"{get:.3f}",
        f"{get / sync:.2f}",
        "yes" if sync <= get else "NO",
    ]


async def run(options: Options) -> Table:
    sizes = [1, 10] if options.quick else [1, 10, 100]
    table = Table(
        f"RECONNECT: a fresh client's full sync against GET api/contents (median of "
        f"{options.repeat}, interleaved)",
        ["notebook", "file MB", "Y doc MB", "first sync s", "sync s", "contents s",
         "contents/sync", "sync ≤ contents"],
    )  # fmt: skip
    async with ExtensionServer() as server:
        for megabytes in sizes:
            table.rows.append(await _measure(server, "ours", megabytes, options.repeat))
    for kind in ALTERNATIVES:
        try:
            async with AlternativeServer(kind) as alternative:
                for megabytes in sizes:
                    row = await _measure(alternative, kind, megabytes, options.repeat)
                    table.rows.append(row)
        except Exception as e:  # an alternative that cannot be installed or run here
            table.rows.append([f"[{kind}] unavailable: {e!r}"[:100]] + ["-"] * 7)
    table.notes += [
        "sync: connect a y-websocket client (a pycrdt Doc, in this process) until it applied "
        "the server's sync step 2; the room is open (another client holds it).",
        "first sync: the test suite's client (pycrdt, re-encoding what it applies), when "
        "the room is not open yet: the server loads the file.",
        "contents: GET api/contents/{path}?content=1, then parse its JSON, in this process.",
        "contents/sync above 1: the sync is faster. Target: sync ≤ contents at 10 MB.",
    ]
    return table
