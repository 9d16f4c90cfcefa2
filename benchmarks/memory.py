"""MEMORY: server RSS around a runaway print loop, and what a progress bar leaves behind.

A cell prints 1 GB (1,000,000 lines of 1,000 characters; 100 MB with ``--quick``) with no
client connected, as when the browser was closed, under the default limits. The
server's resident memory (``VmRSS``) is read before, at its peak (``VmHWM``) and once the
cell is idle. Then a cell draws a 100,000-step progress bar with ``\\r`` (one flushed
message per step) and the text it leaves in the document is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

from .harness import ExtensionServer, Options, cell_map, stream_text, wait_cell_idle
from .report import Table

__all__ = ["GROWTH_TARGET_MB", "run"]

#: Server RSS growth allowed for 1 GB printed, in MB.
GROWTH_TARGET_MB = 200
#: Text a 100,000-step progress bar may leave in the document, in bytes.
PROGRESS_TARGET_BYTES = 1024


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f}"


def _stored_history(database: Path) -> int:
    """Bytes of the Y updates the store holds (read-only; the server keeps writing)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        (total,) = db.execute("SELECT coalesce(sum(length(data)), 0) FROM updates").fetchone()
    return int(total)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


async def _wait_idle(
    server: ExtensionServer, kernel_id: str, path: str, cell_id: str, timeout: float
) -> float:
    """Wait, without a client in the room, until the kernel and then the cell are idle."""
    start = time.perf_counter()
    http = server.session.http
    while time.perf_counter() - start < timeout:
        await asyncio.sleep(0.2)
        kernel = (await http.get(f"/api/kernels/{kernel_id}")).json()
        if kernel.get("execution_state") != "idle":
            continue
        room = await server.connect(path)
        cell = cell_map(room.client, cell_id)
        idle = cell.get("execution_state") == "idle" and cell.get("execution_count") is not None
        await room.client.disconnect()
        if idle:
            return time.perf_counter() - start
    raise TimeoutError(f"{path} did not finish in {timeout:.0f} s")


async def run(options: Options) -> Table:
    lines = 100_000 if options.quick else 1_000_000
    steps = 10_000 if options.quick else 100_000
    printed_gb = lines * 1000 / 1e9
    table = Table(
        "MEMORY: server RSS around a runaway cell, and a progress bar's stored text",
        ["workload", "RSS before MB", "peak MB", "RSS after MB", "growth MB", "seconds",
         "kept in notebook", "Y doc bytes", "spill MB", "update store MB", "target"],
    )  # fmt: skip
    async with ExtensionServer() as server:
        kernel_id = await server.start_kernel()
        home = server.home
        runaway = f"for i in range({lines}):\n    print(str(i).rjust(999, 'x'))"
        progress = (
            f"for i in range({steps}):\n"
            f"    print(f'\\r{{i + 1}}/{steps} ' + '#' * (i * 50 // {steps}), end='', flush=True)"
        )
        cells = server.write_notebook("memory.ipynb", ["pass", runaway, progress])
        warm, big, bar = cells
        room = await server.connect("memory.ipynb")
        await server.execute(kernel_id, room.room, warm)
        await wait_cell_idle(room.client, cell_map(room.client, warm))
        await room.client.disconnect()
        await asyncio.sleep(2)

        before = _status_kb(server.pid, "VmRSS")
        store_before = _tree_bytes(home)
        peak_before = _status_kb(server.pid, "VmHWM")
        await server.execute(kernel_id, room.room, big)
        seconds = await _wait_idle(server, kernel_id, "memory.ipynb", big, 1800)
        await asyncio.sleep(2)
        after = _status_kb(server.pid, "VmRSS")
        peak = _status_kb(server.pid, "VmHWM")
        check = await server.connect("memory.ipynb")
        cell = cell_map(check.client, big)
        kept = len(stream_text(cell))
        doc_bytes = len(check.client.document.ydoc.get_update())
        await check.client.disconnect()
        spill = _tree_bytes(home / "data" / "ydoc_outputs" / "spill")
        store = _tree_bytes(home / "data" / "ydoc_outputs") - spill
        history = _stored_history(home / "data" / "ydoc_outputs" / "updates.db")
        growth = after - before
        table.rows.append(
            [
                f"print {printed_gb:.1f} GB ({lines:,} lines)",
                _mb(before),
                _mb(max(peak, peak_before)) + ("" if peak > peak_before else " (earlier)"),
                _mb(after),
                _mb(growth),
                f"{seconds:.0f}",
                f"{kept / 1e6:.1f} MB of text",
                f"{doc_bytes:,}",
                f"{spill / 1e6:,.0f}",
                f"{(store - store_before) / 1e6:,.0f} ({history / 1e6:,.0f})",
                "yes" if growth / 1024 < GROWTH_TARGET_MB else "NO",
            ]
        )

        before = _status_kb(server.pid, "VmRSS")
        watch = await server.connect("memory.ipynb")
        await server.execute(kernel_id, watch.room, bar)
        start = time.perf_counter()
        bar_cell = cell_map(watch.client, bar)
        await watch.client.wait_for(
            lambda: (
                stream_text(bar_cell).startswith(f"{steps}/{steps}")
                and bar_cell.get("execution_state") == "idle"
            ),
            1800,
        )
        seconds = time.perf_counter() - start
        text = stream_text(bar_cell)
        total_doc = len(watch.client.document.ydoc.get_update())
        await watch.client.disconnect()
        after = _status_kb(server.pid, "VmRSS")
        size = len(text.encode())
        table.rows.append(
            [
                f"progress bar, {steps:,} '\\r' steps",
                _mb(before),
                "-",
                _mb(after),
                _mb(after - before),
                f"{seconds:.0f}",
                f"{size} bytes of text",
                f"{total_doc - doc_bytes:+,}",
                "-",
                "-",
                "yes" if size < PROGRESS_TARGET_BYTES else "NO",
            ]
        )
    table.notes += [
        f"target: RSS growth under {GROWTH_TARGET_MB} MB for the print; under "
        f"{PROGRESS_TARGET_BYTES} bytes of text for the progress bar.",
        "peak: the server process's VmHWM (highest RSS since it started).",
        "kept in notebook: stream text the cell holds (default cell_output_chars: 10,000,000); "
        "the rest is in the spill file, served by GET api/ydoc-outputs/output/...",
        "Y doc bytes: the encoded document a client syncs (tombstones of deleted output "
        "included); for the progress bar, how much it added.",
        "update store: growth of the SQLite files (database and write-ahead log), then in "
        "brackets the updates they hold for all rooms; the room of the print compacts its "
        "history once it outgrows twice the document plus 4 MiB, and SQLite reuses the freed "
        "pages, so the files stop growing.",
    ]
    return table
