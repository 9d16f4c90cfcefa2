"""FAN-OUT: latency from the kernel's print to each connected client's document.

A cell prints ``RATE`` numbered lines a second, each carrying ``time.time()`` taken just
before the print; 1, 10 and 50 y-websocket clients watch the room. The clients run in
processes of their own, ``CLIENTS_PER_PROCESS`` to a process, never in the benchmark's:
each holds a real Y document, as a page does, and notes for each line when the websocket
frame carrying it arrived and when its document showed it (from the Y events). The
baseline, measured in every turn, is a bare jupyter_client consumer of the same code on a
kernel of its own: the latency of iopub alone, the floor for any server.

Run as ``python -m benchmarks.fanout``, this module is one such client process: it reads
what to watch as one JSON line on stdin, says ``ready`` once its clients are synced,
``done`` once each has every line, then writes what they measured as one JSON line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from jupyter_ydoc import YNotebook
from pycrdt import Array, ArrayEvent, Map, TextEvent, YMessageType, create_sync_message
from pycrdt import handle_sync_message as apply_sync_message

from .harness import (
    BareKernel,
    ExtensionServer,
    Options,
    cell_map,
    process_cpu_seconds,
    wait_cell_idle,
)
from .report import Table

__all__ = ["CLIENTS_PER_PROCESS", "TARGET_RATIO", "ClientProcess", "WatchingClient", "run"]

#: Lines a second the cell prints.
RATE = 1000
#: How many clients watch the room, in the runs of each turn.
CLIENTS = (1, 10, 50)
#: Clients per client process: 50 clients in 2 processes, one per core of the machine.
#: Each process decodes its clients' messages in turn; 5 processes of 10 queued less in
#: each, but woke more often beside the server, whose p99 rose (2026-12-06).
CLIENTS_PER_PROCESS = 25
#: Target: the 50-client p99 at most this many times the bare consumer's p99 of the same
#: turn, in every turn.
TARGET_RATIO = 2.0
#: The repository, the client processes' working directory (``-m benchmarks.fanout``).
_ROOT = Path(__file__).resolve().parent.parent


def _code(lines: int) -> str:
    return (
        "import time\n"
        "start = time.time()\n"
        f"for i in range({lines}):\n"
        f"    delay = start + i / {RATE} - time.time()\n"
        "    if delay > 0:\n"
        "        time.sleep(delay)\n"
        "    print(i, time.time(), flush=True)\n"
    )


class LineClock:
    """Turns stream text, as it arrives, into one latency per completed line."""

    def __init__(self) -> None:
        self._partial = ""
        self.latencies: list[float] = []
        self.lines = 0

    def feed(self, text: str, now: float | None = None) -> None:
        """Take in ``text``, which arrived at ``now`` (``time.time()``; by default, now)."""
        now = time.time() if now is None else now
        text = self._partial + text
        *complete, self._partial = text.split("\n")
        for line in complete:
            parts = line.split(" ")
            if len(parts) == 2:
                self.latencies.append(now - float(parts[1]))
                self.lines += 1


# -- a client process ------------------------------------------------------------------


class WatchingClient:
    """A y-websocket client of the room with a Y document of its own, as a page holds.

    For each line of the cell's stream output it notes two times: when the websocket
    frame that carried it arrived (``arrived``, before any decoding) and when its
    document showed it (``visible``: the Y event of the cell's outputs, once the update is
    applied).
    """

    def __init__(self, url: str, cell_id: str, lines: int) -> None:
        self._url = url
        self._cell_id = cell_id
        self._lines = lines
        self.document = YNotebook()
        # A page's undo manager records its own edits only; jupyter_ydoc's would record
        # every update received (tests.yclient.YClient turns it off the same way).
        self.document.undo_manager.include_origin(object())
        self.arrived = LineClock()
        self.visible = LineClock()
        self.ready = asyncio.Event()
        self.complete = asyncio.Event()
        self._received_at = 0.0
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._observed: tuple[Array[Any], Any] | None = None

    async def connect(self) -> None:
        self._ws = await websockets.connect(self._url, max_size=None)
        self._task = asyncio.create_task(self._receive())
        await self._ws.send(create_sync_message(self.document.ydoc))
        await asyncio.wait_for(self.ready.wait(), 60)

    async def close(self) -> None:
        await self._ws.close()
        if self._task is not None:
            await self._task

    async def _receive(self) -> None:
        async for message in self._ws:
            if isinstance(message, str) or not message or message[0] != YMessageType.SYNC:
                continue  # awareness: not what is measured
            self._received_at = time.time()
            reply = apply_sync_message(message[1:], self.document.ydoc)
            if reply is not None:
                await self._ws.send(reply)
            if not self.ready.is_set():
                self._watch()

    def _watch(self) -> None:
        """Observe the cell's outputs once the document holds the cell."""
        for ycell in self.document.ycells:
            if isinstance(ycell, Map) and ycell.get("id") == self._cell_id:
                outputs = ycell.get("outputs")
                if isinstance(outputs, Array):
                    # pycrdt ends the observation when its subscription is collected.
                    self._observed = (outputs, outputs.observe_deep(self._on_events))
                    self.ready.set()
                return

    def _on_events(self, events: list[Any]) -> None:
        visible_at = time.time()
        for event in events:
            changes: Any = event
            if isinstance(event, TextEvent):
                for delta in changes.delta:
                    if "insert" in delta:
                        self._feed(str(delta["insert"]), visible_at)
            elif isinstance(event, ArrayEvent) and not changes.path:
                for delta in changes.delta:
                    for output in delta.get("insert", ()):
                        if isinstance(output, Map) and output.get("output_type") == "stream":
                            self._feed(str(output.get("text", "")), visible_at)

    def _feed(self, text: str, visible_at: float) -> None:
        self.arrived.feed(text, self._received_at)
        self.visible.feed(text, visible_at)
        if self.visible.lines >= self._lines:
            self.complete.set()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _client_process(spec: dict[str, Any]) -> dict[str, Any]:
    """Watch the room with one client per URL of ``spec``; what they measured."""
    clients = [WatchingClient(url, spec["cell_id"], spec["lines"]) for url in spec["urls"]]
    for client in clients:
        await client.connect()
    # A page's collector walks the page's objects; here it would also walk everything
    # this process imported, in the middle of a run (as the server freezes its own).
    gc.collect()
    gc.freeze()
    _say("ready")
    cpu = time.process_time()
    waits = [asyncio.ensure_future(client.complete.wait()) for client in clients]
    await asyncio.wait(waits, timeout=spec["timeout"])
    done_at = time.time()
    _say(f"done {time.process_time() - cpu} {done_at}")
    for wait in waits:
        wait.cancel()
    for client in clients:
        await client.close()
    return {
        "arrived": [[round(x, 6) for x in c.arrived.latencies] for c in clients],
        "visible": [[round(x, 6) for x in c.visible.latencies] for c in clients],
        "lines": [c.visible.lines for c in clients],
    }


def _main() -> None:
    spec = json.loads(sys.stdin.readline())
    _say(json.dumps(asyncio.run(_client_process(spec))))


class ClientProcess:
    """A process of clients (``python -m benchmarks.fanout``), seen from the benchmark.

    Attributes:
        cpu_s: CPU time the process used from ``ready`` to ``done``.
        done_at: ``time.time()`` when each of its clients had every line (or it gave up).
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.cpu_s = 0.0
        self.done_at = 0.0

    @classmethod
    async def start(
        cls, urls: list[str], cell_id: str, lines: int, timeout: float
    ) -> ClientProcess:
        """Start a process whose clients connect to ``urls``; return once they are synced."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.fanout", cwd=_ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None
        spec = {"urls": urls, "cell_id": cell_id, "lines": lines, "timeout": timeout}
        process.stdin.write(json.dumps(spec).encode() + b"\n")
        await process.stdin.drain()
        self = cls(process)
        await self._expect("ready", 120)
        return self

    async def _expect(self, word: str, timeout: float) -> list[str]:
        assert self._process.stdout is not None
        line = (await asyncio.wait_for(self._process.stdout.readline(), timeout)).decode()
        if not line.startswith(word):
            self._process.kill()
            raise RuntimeError(f"client process: expected {word!r}, got {line!r}")
        return line.split()[1:]

    async def wait_done(self, timeout: float) -> None:
        """Wait until each of its clients has every line (or the process gave up)."""
        cpu, done_at = await self._expect("done", timeout)
        self.cpu_s, self.done_at = float(cpu), float(done_at)

    async def results(self) -> dict[str, Any]:
        """What its clients measured; the process ends."""
        out, _ = await asyncio.wait_for(self._process.communicate(), 120)
        if self._process.returncode != 0:
            raise RuntimeError(f"client process failed ({self._process.returncode})")
        result: dict[str, Any] = json.loads(out)
        return result


# -- the benchmark ---------------------------------------------------------------------


@dataclass
class Result:
    """One run; its latencies (seconds) are one per line and client.

    Attributes:
        latencies: To the line being in the client's document (the bare consumer: to its
            iopub message).
        arrivals: To the websocket frame carrying the line arriving at the client.
    """

    clients: int
    latencies: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    lines_seen: list[int] = field(default_factory=list)
    server_cpu_s: float = 0.0
    clients_cpu_s: float = 0.0
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _ours(
    server: ExtensionServer, kernel_id: str, clients: int, lines: int, turn: int
) -> Result:
    path = f"fanout-{clients}-{turn}.ipynb"
    [cell_id] = server.write_notebook(path, [_code(lines)])
    room = ""
    urls = []
    for _ in range(clients):  # a session each, as pages have
        room, url = await server.open_room(path)
        urls.append(url)
    timeout = lines / RATE * 4 + 30
    groups = [urls[i : i + CLIENTS_PER_PROCESS] for i in range(0, clients, CLIENTS_PER_PROCESS)]
    processes = await asyncio.gather(
        *(ClientProcess.start(group, cell_id, lines, timeout) for group in groups)
    )
    result = Result(clients)
    cpu = process_cpu_seconds(server.pid)
    start = time.time()
    await server.execute(kernel_id, room, cell_id)
    for process in processes:
        await process.wait_done(timeout + 30)
    result.server_cpu_s = process_cpu_seconds(server.pid) - cpu
    result.seconds = max(process.done_at for process in processes) - start
    result.clients_cpu_s = sum(process.cpu_s for process in processes)
    for process in processes:
        measured = await process.results()
        for visible, arrived in zip(measured["visible"], measured["arrived"], strict=True):
            result.latencies += visible
            result.arrivals += arrived
        result.lines_seen += measured["lines"]
    await asyncio.sleep(1.5)  # the autosave of the run, not charged to the next one
    return result


async def _baseline(lines: int) -> Result:
    clock = LineClock()
    async with BareKernel() as kernel:
        await kernel.run("pass")
        await kernel.run(_code(lines), on_stream=clock.feed)
    return Result(0, clock.latencies, lines_seen=[clock.lines])


def _p99_ms(result: Result) -> float:
    return percentile(result.latencies, 0.99) * 1000


def _ratios(runs: list[Result], references: list[Result]) -> list[float]:
    """Each run's p99 over the p99 of the reference run of the same turn."""
    return [_p99_ms(run) / _p99_ms(ref) for run, ref in zip(runs, references, strict=True)]


def _row(
    name: str,
    runs: list[Result],
    lines: int,
    bare: list[Result] | None = None,
    one_client: list[Result] | None = None,
) -> list[str]:
    # The run with the median p99, whole: its figures belong together.
    result = sorted(runs, key=_p99_ms)[len(runs) // 2]
    ms = [x * 1000 for x in result.latencies]
    seen = min(seen for run in runs for seen in run.lines_seen)
    complete = seen == lines
    arrival = f"{percentile(result.arrivals, 0.99) * 1000:.1f}" if result.arrivals else "-"
    cpu = f"{result.server_cpu_s / result.seconds * 100:.0f}%" if result.seconds else "-"
    clients_cpu = f"{result.clients_cpu_s / result.seconds * 100:.0f}%" if result.seconds else "-"
    over_bare = _ratios(runs, bare) if bare else []
    verdict = "-"
    if result.clients == max(CLIENTS):
        above = sum(ratio > TARGET_RATIO for ratio in over_bare)
        verdict = "holds" if complete and not above else f"NO ({above} of {len(runs)} above)"
    return [
        name,
        f"{len(ms):,}",
        f"{percentile(ms, 0.5):.1f}",
        f"{_p99_ms(result):.1f}",
        f"{max(ms, default=float('nan')):.1f}",
        arrival,
        cpu,
        clients_cpu,
        "yes" if complete else f"NO ({seen}/{lines})",
        " ".join(f"{_p99_ms(run):.0f}" for run in runs),
        " ".join(f"{ratio:.1f}" for ratio in over_bare) or "-",
        " ".join(f"{ratio:.1f}" for ratio in _ratios(runs, one_client)) if one_client else "-",
        verdict,
    ]


async def run(options: Options) -> Table:
    lines = 2000 if options.quick else 5000
    table = Table(
        f"FAN-OUT: a cell prints {RATE:,} lines/s for {lines / RATE:.0f} s; latency from the "
        f"print to each client's document ({options.repeat} turns: the bare consumer, then "
        "every client count; the run with the median p99 shown)",
        ["clients", "samples", "p50 ms", "p99 ms", "max ms", "p99 at arrival",
         "server CPU", "clients CPU", "every line", "p99 of each run",
         "÷ bare p99, each run", "÷ 1 client p99, each run",
         f"≤ {TARGET_RATIO:.0f}x bare in every run"],
    )  # fmt: skip
    bare: list[Result] = []
    runs: dict[int, list[Result]] = {clients: [] for clients in CLIENTS}
    async with ExtensionServer() as server:
        kernel_id = await server.start_kernel()
        # Warm-up: the server's client of the kernel is made on the first execution.
        [warm] = server.write_notebook("warm.ipynb", ["pass"])
        room = await server.connect("warm.ipynb")
        await server.execute(kernel_id, room.room, warm)
        await wait_cell_idle(room.client, cell_map(room.client, warm))
        await room.client.disconnect()
        for turn in range(options.repeat):
            bare.append(await _baseline(lines))
            for clients in CLIENTS:
                runs[clients].append(await _ours(server, kernel_id, clients, lines, turn))
    table.rows.append(_row("bare iopub consumer", bare, lines))
    for clients in CLIENTS:
        name = f"ours, {clients} client{'s' * (clients > 1)}"
        one_client = runs[1] if clients > 1 else None
        table.rows.append(_row(name, runs[clients], lines, bare, one_client))
    table.notes += [
        "samples: one per line and client. Latency: the client's time.time() when its copy of "
        "the document showed the line (its Y event), minus the time.time() the kernel "
        "printed it with. p99 at arrival: the same run's, to the arrival of the websocket "
        "frame that carried the line, before the client decoded it.",
        f"The clients run in processes of their own, {CLIENTS_PER_PROCESS} to a process, "
        "not in this benchmark's (which runs only the bare consumer, in its turn); each "
        "holds a real Y document (pycrdt), as a page does. They share the 2 cores with the "
        "server and the kernel.",
        "server CPU, clients CPU: CPU time of the server process, and of every client "
        "process, over the run's wall time (100% = 1 core).",
        "p99 of each run and the ratios: in the order of the turns; a ratio divides a run's "
        "p99 by the p99 of the bare consumer's run (or of the 1-client run) of the same "
        f"turn. Target: 50 clients at most {TARGET_RATIO:.0f}x the bare consumer, in every "
        "turn, every line delivered.",
    ]
    return table


if __name__ == "__main__":
    _main()
