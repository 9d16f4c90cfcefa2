"""INGEST: how fast a cell's output reaches a client's document, against a bare kernel.

Ours: POST ``execute`` to a real server with the extension, and wait until one connected
y-websocket client holds the last line. Baseline, the limit: a jupyter_client consumer of
a kernel of the same kind, waiting for the same line on iopub. Runs are interleaved and
each figure is the median of ``Options.repeat`` runs (times a workload's
``runs_per_repeat``).

Every run has a new kernel (each server shuts its last one down and starts another, as
JupyterLab's "shut down kernel" then "start kernel" would; the bare one is started
anew): a CPU-bound loop runs a few percent faster in one Python process than in another
(its memory layout), and with one kernel per side for a whole workload that difference
came out as one server being faster than another. The kernel's own CPU time
was within 1% of each run's time, on every side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import cached_property

from .alternatives import AlternativeServer
from .harness import (
    RUN_TIMEOUT,
    BareKernel,
    ExtensionServer,
    Options,
    StreamTailWatch,
    cell_map,
    process_cpu_seconds,
    stream_text,
    wait_cell_idle,
)
from .report import SIGNIFICANCE, Table, median, slower_rounds

__all__ = ["TARGET", "Workload", "run", "workloads"]

#: The alternatives run side by side (see alternatives.py).
ALTERNATIVES = ("nbmodel", "documents")
#: Longest wait for one run of an alternative, and a run so slow that it is not repeated.
ALTERNATIVE_TIMEOUT = 180.0
SLOW_RUN = 60.0
#: Ours must reach at least this fraction of the baseline's rate.
TARGET = 0.95
#: Seconds after each of our runs for the autosave it armed to fire and finish, so that
#: its cost is not charged to the next run (the server's default autosave_delay is 1 s).
SETTLE = 1.5
#: Seconds between a kernel's warm-up and a run, for what it still does after it
#: answered (its history thread, the server's first save of the room).
KERNEL_SETTLE = 0.5


@dataclass(frozen=True)
class Workload:
    """A cell that prints ``lines`` numbered lines, ``0`` to ``lines - 1``."""

    name: str
    code: str
    lines: int
    #: Runs per ``--repeat``: a workload of about a second gets more, since one
    #: descheduling of the kernel moves a single run by a tenth.
    runs_per_repeat: int = 1

    @property
    def last_line(self) -> str:
        """The end of the stream text once every line arrived."""
        return f"{self.lines - 1}\n"

    @cached_property
    def expected(self) -> str:
        """The whole stdout text the cell prints."""
        return "".join(f"{i}\n" for i in range(self.lines))


def workloads(quick: bool) -> list[Workload]:
    """The two shapes of stream output the server must keep up with (see DESIGN.md)."""
    plain, flushed = (20_000, 2_000) if quick else (200_000, 20_000)
    return [
        # ipykernel buffers stdout and sends a few large stream messages a second.
        Workload("print", f"for i in range({plain}):\n    print(i)", plain, runs_per_repeat=3),
        # One stream message per line.
        Workload(
            "print flush",
            f"for i in range({flushed}):\n    print(i, flush=True)",
            flushed,
            runs_per_repeat=2,
        ),
    ]


@dataclass
class Samples:
    """Every run of one workload, baseline and ours."""

    baseline_s: list[float] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    ours_s: list[float] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)
    updates: list[int] = field(default_factory=list)
    #: Whether each run got every line, in order, and nothing else.
    baseline_complete: list[bool] = field(default_factory=list)
    ours_complete: list[bool] = field(default_factory=list)


class OurNotebook:
    """One workload's notebook on the server, its kernel and one connected client."""

    def __init__(
        self, server: ExtensionServer | AlternativeServer, kernel_id: str, workload: Workload
    ) -> None:
        self._server = server
        self._kernel_id = kernel_id
        self._workload = workload
        self._path = f"ingest-{workload.lines}-{len(workload.code)}.ipynb"
        self._cell_id, self._warm_id = server.write_notebook(self._path, [workload.code, "pass"])

    async def __aenter__(self) -> OurNotebook:
        self._room = await self._server.connect(self._path)
        # Runs `pass` once: starts the server's client of this kernel and opens the room.
        await self._execute(self._warm_id)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._room.client.disconnect()

    async def new_kernel(self) -> None:
        """Run the next run on a new kernel, warmed up like the first."""
        self._kernel_id = await self._server.replace_kernel(self._kernel_id)
        await self._execute(self._warm_id)
        await asyncio.sleep(KERNEL_SETTLE)

    async def _execute(self, cell_id: str) -> None:
        await self._server.execute(self._kernel_id, self._room.room, cell_id)
        await wait_cell_idle(self._room.client, cell_map(self._room.client, cell_id))

    async def run(self, samples: Samples, timeout: float = RUN_TIMEOUT) -> None:
        """Run the workload once; record the time to the last line and the server's CPU."""
        client = self._room.client
        cell = cell_map(client, self._cell_id)
        watch = StreamTailWatch(cell, self._workload.last_line)
        client.listeners.append(watch)
        try:
            cpu_before = process_cpu_seconds(self._server.pid)
            start = time.perf_counter()
            await self._server.execute(self._kernel_id, self._room.room, self._cell_id)
            await asyncio.wait_for(watch.done.wait(), timeout)
            cpu_after = process_cpu_seconds(self._server.pid)
        finally:
            client.listeners.remove(watch)
        samples.ours_s.append(watch.seen_at - start)
        samples.server_cpu_s.append(cpu_after - cpu_before)
        samples.updates.append(watch.messages)
        await wait_cell_idle(client, cell)
        samples.ours_complete.append(stream_text(cell) == self._workload.expected)
        await asyncio.sleep(SETTLE)


async def _baseline(workload: Workload, samples: Samples) -> None:
    """One run of the workload on a new bare kernel."""
    async with BareKernel() as kernel:
        await kernel.run("pass")  # warm-up
        await asyncio.sleep(KERNEL_SETTLE)
        result = await kernel.run(workload.code, workload.last_line)
    samples.baseline_s.append(result.seconds)
    samples.messages.append(result.messages)
    samples.baseline_complete.append(result.stdout == workload.expected)


HEADERS = [
    "workload", "lines", "runs", "iopub msgs", "Y msgs", "baseline s", "ours s", "ratio",
    "baseline lines/s", "ours lines/s", "server CPU s", "CPU µs/msg", "all lines",
    f"≥ {TARGET}",
]  # fmt: skip


def _row(name: str, workload: Workload, baseline: Samples, samples: Samples) -> list[str]:
    base, ours = median(baseline.baseline_s), median(samples.ours_s)
    messages, cpu = median(baseline.messages), median(samples.server_cpu_s)
    # Each round's ratio, then their median: a drift of the machine's speed over the
    # minutes of a workload then falls on both sides of every ratio. A side that was
    # stopped has the first rounds' samples only, hence the zip.
    ratio = median(
        [b / o for b, o in zip(baseline.baseline_s, samples.ours_s, strict=False)]
    )  # = ours_rate / baseline_rate
    complete = all(samples.ours_complete) and all(baseline.baseline_complete)
    runs = len(samples.ours_complete)
    return [
        name,
        f"{workload.lines:,}",
        f"{runs}",
        f"{messages:,.0f}",
        f"{median(samples.updates):,.0f}",
        f"{base:.2f}",
        f"{ours:.2f}",
        f"{ratio:.3f}",
        f"{workload.lines / base:,.0f}",
        f"{workload.lines / ours:,.0f}",
        f"{cpu:.2f}",
        f"{cpu / messages * 1e6:,.0f}",
        "yes"
        if complete
        else f"NO: ours {sum(samples.ours_complete)}/{runs}, "
        f"baseline {sum(baseline.baseline_complete)}/{len(baseline.baseline_complete)}",
        "yes" if ratio >= TARGET and all(samples.ours_complete) else "NO",
    ]


@dataclass
class _Side:
    """One server under test, for one workload."""

    name: str
    notebook: OurNotebook
    timeout: float
    samples: Samples = field(default_factory=Samples)
    #: Why it gets no more runs (too slow, or a run that never ended).
    stopped: str | None = None

    async def run(self) -> None:
        try:
            await self.notebook.new_kernel()
        except Exception as e:
            self.stopped = f"NO: new kernel failed: {e!r}"[:60]
            return
        try:
            await self.notebook.run(self.samples, self.timeout)
        except TimeoutError:
            # nbmodel 0.2.9 can lose messages on long flushed runs and never end.
            self.stopped = f"NO: not done in {self.timeout:.0f} s"
            return
        if self.samples.ours_s[-1] > SLOW_RUN:
            self.stopped = "slow"  # one run that slow says enough (a quadratic path)


async def run(options: Options) -> Table:
    """Measure every workload; return the table of medians."""
    table = Table(
        "INGEST: execute -> last line in one client's document "
        "(median of its runs, every side in turn)",
        HEADERS,
    )
    async with AsyncExitStack() as stack:
        servers: list[tuple[str, ExtensionServer | AlternativeServer, float]] = [
            ("ours", await stack.enter_async_context(ExtensionServer()), RUN_TIMEOUT)
        ]
        for kind in ALTERNATIVES:
            try:
                alternative = await stack.enter_async_context(AlternativeServer(kind))
            except Exception as e:  # an alternative that cannot be installed or run here
                table.rows.append([f"[{kind}] unavailable: {e!r}"[:100]] + ["-"] * 12)
                continue
            servers.append((kind, alternative, ALTERNATIVE_TIMEOUT))
        for workload in workloads(options.quick):
            runs = options.repeat * workload.runs_per_repeat
            table.rows += await _compare(workload, servers, runs)
    table.notes += [
        "runs: of each side; the figures are their medians.",
        "ratio: median over the rounds of baseline s / ours s of the same round "
        "(= ours lines/s / baseline lines/s; 1.0 = the limit).",
        "baseline: jupyter_client AsyncKernelClient on iopub, no server; iopub msgs from it.",
        "Every run on a new kernel (started through the server; the bare one in this "
        "process): one kernel process runs the loop a few % faster than another.",
        "ours: POST execute -> a y-websocket client's document ends with the last line.",
        "Both sides wait on their kernel's pace, and on 2 cores the consumer competes with "
        "the kernel: jupyter_client's reader costs the bare consumer about 160 µs of CPU "
        "a flushed message, more than the server spends, hence ratios above 1.",
        "all lines: every run, both sides, got exactly the printed text (checked after timing).",
        "server CPU: CPU time of the server process (all threads) from the POST to the last "
        "line; CPU µs/msg divides it by the baseline's iopub message count.",
        "[nbmodel]: jupyter-server-nbmodel + jupyter-collaboration, [documents]: "
        "jupyter-server-documents, from PyPI in venvs of their own (alternatives.py), driven "
        "as their own frontends drive them, each round in turn with ours and the baseline "
        "(one baseline series for all); last column: is our median time at most theirs; "
        "if not, in how many rounds ours took longer, and the sign test's p-value: ours "
        f"is slower (NO) below {SIGNIFICANCE}, else the difference is within the rounds' "
        "own spread (tie: at the kernel's pace, one kernel process runs the same loop a "
        "few % faster than another). A "
        f"run of theirs that takes over {SLOW_RUN:.0f} s is not repeated; one that does "
        f"not end in {ALTERNATIVE_TIMEOUT:.0f} s is reported as such.",
    ]
    return table


def _against(ours: list[float], theirs: list[float]) -> str:
    """Whether our runs are no slower than an alternative's: by the medians, and if
    they say otherwise, by a sign test over the rounds (each round runs both sides)."""
    if median(ours) <= median(theirs):
        return "ours ≥"
    slower, rounds, p = slower_rounds(ours, theirs)
    verdict = "NO: ours slower" if p < SIGNIFICANCE else "tie: ours slower"
    return f"{verdict} in {slower}/{rounds} rounds (p={p:.2f})"


async def _compare(
    workload: Workload,
    servers: list[tuple[str, ExtensionServer | AlternativeServer, float]],
    repeat: int,
) -> list[list[str]]:
    """Run ``workload`` ``repeat`` times on a bare kernel and on every server, each time
    on a new kernel process, round by round in a rotating order, so that the machine's
    drifts fall on every side alike."""
    baseline = Samples()
    sides: list[_Side] = []
    async with AsyncExitStack() as stack:
        for name, server, timeout in servers:
            kernel_id = await server.start_kernel()
            notebook = await stack.enter_async_context(OurNotebook(server, kernel_id, workload))
            sides.append(_Side(name, notebook, timeout))
        for i in range(repeat):
            turns: list[Callable[[], Awaitable[None]]] = [lambda: _baseline(workload, baseline)]
            turns += [side.run for side in sides if side.stopped is None]
            k = i % len(turns)
            for turn in turns[k:] + turns[:k]:
                await turn()
    ours = sides[0]
    rows = [_row(workload.name, workload, baseline, ours.samples)]
    for side in sides[1:]:
        name = f"{workload.name} [{side.name}]"
        if not side.samples.ours_s:
            timed_out = side.stopped or "NO: no run"
            rows.append(
                [name, f"{workload.lines:,}"] + ["-"] * (len(HEADERS) - 4) + [timed_out, "ours ≥"]
            )
            continue
        row = _row(name, workload, baseline, side.samples)
        row[-1] = _against(ours.samples.ours_s, side.samples.ours_s)
        if side.stopped is not None:  # why it has fewer runs than the others
            row[-2] = f"{row[-2]}; then {side.stopped}"
        rows.append(row)
    return rows
