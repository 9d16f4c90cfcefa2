"""LATENCY: Shift+Enter to first output, and Run All, on a warm kernel, side by side.

Four sides in one run, taking turns: **ours** (the extension), **nbmodel** and
**documents** (alternatives.py), each driven through its execute endpoint with the
output timed in a connected y-websocket client's copy of the document; and the
**websocket**: stock JupyterLab without server-side execution, an ``execute_request``
over ``api/kernels/{id}/channels`` of our server (on our side's kernel), timed to the
first ``stream`` message on that websocket. The websocket is the floor every target is
measured against.

Every side's page is simulated as a browser has it: its HTTP requests share at most 6
connections (Chromium's limit per host over HTTP/1.1), each execute POST carries
JupyterLab's ``?{Date.now()}`` in its query (``PageTransport``), and a kernel websocket is
open (on our server the websocket side's). Ours is also marked as its page marks: the
cell's ``execution_state = "running"`` written into the shared document (one
transaction) right before its POST. The alternatives' own pages do not mark, so they get
the same POSTs without marks.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import httpx
import websockets
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from pycrdt import Array, Map
from websockets.typing import Subprotocol

from tests.conftest import TOKEN

from .alternatives import AlternativeServer, stream_text_any
from .harness import ExtensionServer, Options, RoomClient, cell_map
from .pagehttp import KeepAliveTransport
from .report import Table, median

__all__ = [
    "TARGET_EXTRA_MS",
    "TARGET_RUN_ALL_RATIO",
    "PageTransport",
    "nearest_rank",
    "run",
    "run_all_sources",
]

T = TypeVar("T")

#: The alternatives run side by side (see alternatives.py).
ALTERNATIVES = ("nbmodel", "documents")
#: Shift+Enter's p50 may exceed the kernel websocket's by at most this, in milliseconds.
TARGET_EXTRA_MS = 10.0
#: Run All's wall time may be at most this times the kernel websocket's.
TARGET_RUN_ALL_RATIO = 1.2
#: The code cells of the Shift+Enter notebook, and the one measured besides the first.
SHIFT_CELLS = 60
FIFTIETH = 49
#: Cells run one after the other, and Run All's cells.
CHAIN_CELLS = 10
RUN_ALL_CELLS = 100
#: The shuffled Run All delays each POST by a random time up to this, in seconds.
MAX_DELAY = 0.2
#: Seconds between measurements: the autosave a change arms (1 s on every side) fires
#: and nbmodel's request polls end before the next measurement.
SETTLE = 1.2
#: A Run All is over once no Y message came for this long and no cell shows running.
QUIET = 1.0
CELL_TIMEOUT = 30.0
RUN_ALL_TIMEOUT = 120.0
#: Chromium's connections per host over HTTP/1.1, which the page's requests share.
PAGE_CONNECTIONS = 6
SEED = 20261207
PRINT_TIME = "print(time.time())"
WARM_UP = "import time"
V1 = "v1.kernel.websocket.jupyter.org"


def run_all_sources(cells: int) -> list[str]:
    """Run All's cells: a chain that raises KeyError if a cell runs before its
    predecessor (cell 0 starts it afresh), recording the order; the last prints it."""
    sources = ["x = {0: 0}\norder = [0]"]
    sources += [f"x[{i}] = x[{i - 1}] + 1\norder.append({i})" for i in range(1, cells)]
    sources[-1] += "\nprint(order)"
    return sources


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by nearest rank (of 30 values, p99 is the largest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- the page's HTTP requests ----------------------------------------------------------


class PageTransport(httpx.AsyncBaseTransport):
    """The page's network, as an httpx transport: what a browser does to the page's
    requests that matters to the order they reach the server in.

    - Execute POSTs get JupyterLab's ``?{Date.now()}`` (``ServerConnection`` appends its
      clock in milliseconds to requests it must not cache), taken when the request is
      made, before anything below holds it back.
    - For the shuffled Run All, a POST then waits the delay set for its cell, so that
      the POSTs reach the server in another order than the page made them (and built
      their bodies) in.
    - At most ``connections`` requests are in flight (Chromium's limit per host over
      HTTP/1.1), and the others wait their turn in the order they were made, as in the
      browser's socket pool. httpx's own pool limit does not keep that order (Run All's
      POSTs went out shuffled).
    - Below that, a light HTTP/1.1 client (``KeepAliveTransport``, pagehttp.py): the
      browser runs on the user's machine, while this page runs on the server's cores,
      where httpx's default transport took about 2.5 ms of CPU per request.

    Attributes:
        delays: Cell id -> seconds to hold its next execute POST back.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        connections: int = PAGE_CONNECTIONS,
    ) -> None:
        self._inner = inner if inner is not None else KeepAliveTransport()
        # Wakes its waiters first come, first served.
        self._slots = asyncio.Semaphore(connections)
        self.delays: dict[str, float] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/execute"):
            if not request.url.query:
                request.url = request.url.copy_with(query=str(int(time.time() * 1000)).encode())
            delay = self.delays.pop(_cell_id(json.loads(request.content)), 0.0)
            if delay:
                await asyncio.sleep(delay)
        async with self._slots:
            response = await self._inner.handle_async_request(request)
            await response.aread()  # the connection is free once the body is in
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _cell_id(body: dict[str, Any]) -> str:
    """The cell of an execute request's body, whichever server's shape it has."""
    if "cell_id" in body:  # ours (jupyter-docprovider's executor)
        return str(body["cell_id"])
    if "metadata" in body:  # nbmodel
        return str(body["metadata"]["cell_id"])
    return str(body["cells"][0]["cell_id"])  # documents


async def _as_the_page(server: ExtensionServer | AlternativeServer, network: PageTransport) -> None:
    """Send the server's REST requests (execute POSTs, nbmodel's polls) over the
    page's network."""
    session = server.session
    old = session.http
    session.http = httpx.AsyncClient(
        base_url=old.base_url, headers=old.headers, timeout=30, transport=network
    )
    await old.aclose()


def _kernel_ws_url(server: ExtensionServer | AlternativeServer, kernel_id: str) -> str:
    port = server.session.server.port
    return (
        f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
        f"?session_id={uuid.uuid4()}&token={TOKEN}"
    )


# -- the page's kernel websocket -------------------------------------------------------


@dataclass
class KernelExecution:
    """One ``execute_request`` sent over a kernel websocket, as its messages arrive."""

    msg_id: str
    stdout: list[str] = field(default_factory=list)
    first_stream_at: float = 0.0
    idle_at: float = 0.0
    reply_at: float = 0.0
    reply_status: str = ""
    streamed: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    replied: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, msg_type: str, content: dict[str, Any], now: float) -> None:
        if msg_type == "stream":
            if not self.streamed.is_set():
                self.first_stream_at = now
                self.streamed.set()
            if content.get("name") == "stdout":
                self.stdout.append(str(content.get("text", "")))
        elif msg_type == "status" and content.get("execution_state") == "idle":
            self.idle_at = now
            self.idle.set()
        elif msg_type == "execute_reply":
            self.reply_at, self.reply_status = now, str(content.get("status"))
            self.replied.set()


class KernelChannel:
    """A page's kernel websocket (``api/kernels/{id}/channels``), with JupyterLab's
    ``v1.kernel.websocket.jupyter.org`` framing; it reads every message the server
    sends and keeps those of its own requests."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._session = uuid.uuid4().hex
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._runs: dict[str, KernelExecution] = {}

    async def connect(self) -> None:
        self._ws = await websockets.connect(
            self._url, subprotocols=[Subprotocol(V1)], max_size=None
        )
        if self._ws.subprotocol != V1:
            raise RuntimeError(f"kernel websocket without {V1}: {self._ws.subprotocol!r}")
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def execute(self, code: str) -> KernelExecution:
        """Send ``code`` as JupyterLab's ``CodeCell.execute`` does."""
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id, "msg_type": "execute_request", "username": "bench",
            "session": self._session, "date": "", "version": "5.2",
        }  # fmt: skip
        content = {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": True, "stop_on_error": True,
        }  # fmt: skip
        metadata = {"deletedCells": [], "recordTiming": False}
        parts = [json.dumps(part).encode() for part in (header, {}, metadata, content)]
        run = self._runs[msg_id] = KernelExecution(msg_id)
        await self._ws.send(serialize_msg_to_ws_v1(parts, "shell"))
        return run

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                now = time.perf_counter()
                if isinstance(message, str):
                    continue
                _, parts = deserialize_msg_from_ws_v1(message)
                if len(parts) < 4:
                    continue
                run = self._runs.get(json.loads(parts[1]).get("msg_id", ""))
                if run is not None:
                    run.feed(json.loads(parts[0])["msg_type"], json.loads(parts[3]), now)
        except websockets.ConnectionClosed:
            pass


# -- what a side measures --------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One cell run: when it was sent, when its output showed, what it printed.

    Attributes:
        sent_at: ``time.perf_counter()`` right before the mark and the POST (or the
            websocket message).
        seen_at: ``time.perf_counter()`` when the output reached the client.
        to_kernel: From sending to the kernel's ``time.time()`` in the output, seconds.
        answered: How long the POST took to be answered (websocket: 0).
    """

    sent_at: float
    seen_at: float
    to_kernel: float
    answered: float = 0.0

    @property
    def seconds(self) -> float:
        return self.seen_at - self.sent_at


@dataclass(frozen=True)
class RunAllResult:
    """One Run All.

    Attributes:
        seconds: First POST (websocket: message) to the last cell done; None if the
            last cell never finished (it did not run, or not within ``RUN_ALL_TIMEOUT``).
        ran: Cells that ran (have a new execution count; websocket: replied ok).
        in_order: The last cell printed ``[0, 1, ..., n - 1]``: every cell ran, once,
            in document order.
        errors: Cells with an error output.
        refused: POSTs the server refused (an error answer).
    """

    seconds: float | None
    ran: int
    in_order: bool
    errors: int
    refused: int = 0


@dataclass
class SideResults:
    shift: dict[int, list[Timing]] = field(default_factory=lambda: {0: [], FIFTIETH: []})
    chain: list[list[Timing]] = field(default_factory=list)
    run_all: dict[str, list[RunAllResult]] = field(default_factory=dict)


def _count(cell: Map[Any]) -> Any:
    return cell.get("execution_count")


def _finished(cell: Map[Any], before: Any) -> bool:
    """The cell ran since its count was ``before`` and is idle again."""
    count = _count(cell)
    return count is not None and count != before and cell.get("execution_state") == "idle"


def _has_error(cell: Map[Any]) -> bool:
    outputs = cell.get("outputs")
    return isinstance(outputs, Array) and any(
        isinstance(o, Map | dict) and o.get("output_type") == "error" for o in outputs
    )


class FirstOutput:
    """A client listener: notes when a cell's stream text first differs from ``before``
    (the previous run's) and ends a line."""

    def __init__(self, cell: Map[Any], before: str) -> None:
        self._cell = cell
        self._before = before
        self.text = ""
        self.seen_at = 0.0
        self.done = asyncio.Event()

    def __call__(self) -> None:
        if self.done.is_set():
            return
        text = stream_text_any(self._cell)
        if text and text != self._before and text.endswith("\n"):
            self.seen_at, self.text = time.perf_counter(), text
            self.done.set()


class DocumentSide:
    """A server that runs cells itself (ours or an alternative), one notebook per
    workload on a kernel of its own, and one client of the notebook's room."""

    def __init__(
        self,
        name: str,
        server: ExtensionServer | AlternativeServer,
        *,
        marks: bool,
        page_kernel_ws: bool,
        variants: tuple[str, ...] = ("in order", "shuffled"),
    ) -> None:
        self.name = name
        self.server = server
        self.variants = variants
        self.network = PageTransport()
        self.results = SideResults()
        self.kernel_id = ""
        self._marks = marks
        self._page_kernel_ws = page_kernel_ws
        self._channel: KernelChannel | None = None
        self._room: RoomClient | None = None
        self._cells: list[Map[Any]] = []
        self._ids: list[str] = []
        self._last_message = 0.0

    async def start(self, workload: str, sources: list[str]) -> None:
        """A new kernel and a new notebook of ``sources`` for ``workload``, warmed up."""
        await self._close_notebook()
        if self.kernel_id:
            self.kernel_id = await self.server.replace_kernel(self.kernel_id)
        else:
            await _as_the_page(self.server, self.network)
            self.kernel_id = await self.server.start_kernel()
        if self._page_kernel_ws:
            self._channel = KernelChannel(_kernel_ws_url(self.server, self.kernel_id))
            await self._channel.connect()
        path = f"latency-{workload}.ipynb"
        self._ids = self.server.write_notebook(path, sources)
        self._room = await self.server.connect(path)
        self._room.client.listeners.append(self._on_message)
        self._cells = [cell_map(self._room.client, cell_id) for cell_id in self._ids]
        if sources[-1] == WARM_UP:
            await self._run_silent(len(sources) - 1)
            await self.run_cell(0)
        else:
            # One cell first: documents attaches the room to the kernel on the first
            # request (a kernel session, as JupyterLab makes on opening the notebook).
            await self._run_silent(0)
            await self.run_all(shuffled=False, rng=random.Random(0))

    def _on_message(self) -> None:
        self._last_message = time.perf_counter()

    async def _close_notebook(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._room is not None:
            await self._room.client.disconnect()
            self._room = None

    async def aclose(self) -> None:
        await self._close_notebook()

    @property
    def _client(self) -> Any:
        assert self._room is not None, "start a workload first"
        return self._room.client

    async def _post(self, index: int) -> float:
        """POST the cell's execute as its page does; return how long the answer took."""
        assert self._room is not None
        room = self._room.room
        start = time.perf_counter()
        try:
            await self.server.execute(self.kernel_id, room, self._ids[index])
        except RuntimeError:
            if isinstance(self.server, AlternativeServer):
                # documents' page forgets its chain of requests after one failed (the
                # next names no predecessor, which would never come); alternatives.py
                # keeps it, and every later request would wait for it and fail.
                self.server._last_request.pop(room, None)
            raise
        return time.perf_counter() - start

    async def _run_silent(self, index: int) -> None:
        """Run a cell that prints nothing, until it is idle again."""
        cell = self._cells[index]
        before = _count(cell)
        await self._post(index)
        await self._client.wait_for(lambda: _finished(cell, before), CELL_TIMEOUT)

    async def run_cell(self, index: int) -> Timing:
        """Shift+Enter on code cell ``index``: time to its first output; then wait
        until it is idle again."""
        cell = self._cells[index]
        before = _count(cell)
        watch = FirstOutput(cell, stream_text_any(cell))
        self._client.listeners.append(watch)
        try:
            wall, sent_at = time.time(), time.perf_counter()
            if self._marks:
                cell["execution_state"] = "running"
            answered = await self._post(index)
            await asyncio.wait_for(watch.done.wait(), CELL_TIMEOUT)
        finally:
            self._client.listeners.remove(watch)
        await self._client.wait_for(lambda: _finished(cell, before), CELL_TIMEOUT)
        return Timing(sent_at, watch.seen_at, float(watch.text.split()[-1]) - wall, answered)

    async def run_all(
        self, *, shuffled: bool, rng: random.Random, one_at_a_time: bool = False
    ) -> RunAllResult:
        """Run All as the page does: for each cell in document order, its mark (ours)
        and its POST, in one loop with no await between them, all POSTs concurrent.
        ``shuffled``: the marks first, then the POSTs, each held back a random time up
        to ``MAX_DELAY``. ``one_at_a_time``: each POST waits for the previous one's
        answer (nbmodel's own page)."""
        cells, last = self._cells, self._cells[-1]
        before = [_count(cell) for cell in cells]
        done = asyncio.Event()
        done_at: list[float] = []

        def watch() -> None:
            if (
                not done.is_set()
                and _finished(last, before[-1])
                and not any(cell.get("execution_state") == "running" for cell in cells)
            ):
                done_at.append(time.perf_counter())
                done.set()

        self._client.listeners.append(watch)
        try:
            if shuffled:
                self.network.delays = {cell_id: rng.uniform(0, MAX_DELAY) for cell_id in self._ids}
            start = time.perf_counter()
            answers: list[float | BaseException] = []
            if one_at_a_time:
                for index in range(len(cells)):
                    answers += await asyncio.gather(self._post(index), return_exceptions=True)
            else:
                posts = []
                for index, cell in enumerate(cells):
                    if self._marks:
                        cell["execution_state"] = "running"
                    if not shuffled:
                        posts.append(asyncio.ensure_future(self._post(index)))
                if shuffled:
                    posts = [asyncio.ensure_future(self._post(i)) for i in range(len(cells))]
                answers = await asyncio.gather(*posts, return_exceptions=True)
            await self._wait_done(done, cells)
        finally:
            self._client.listeners.remove(watch)
            self.network.delays = {}
        await self._wait_quiet(cells)
        fresh = [_finished(cell, b) for cell, b in zip(cells, before, strict=True)]
        return RunAllResult(
            seconds=done_at[0] - start if done_at else None,
            ran=sum(fresh),
            in_order=all(fresh) and stream_text_any(last) == f"{list(range(len(cells)))}\n",
            errors=sum(f and _has_error(cell) for cell, f in zip(cells, fresh, strict=True)),
            refused=sum(isinstance(answer, BaseException) for answer in answers),
        )

    async def _wait_done(self, done: asyncio.Event, cells: list[Map[Any]]) -> None:
        """Wait for the last cell to finish; or, once every POST was answered, until
        the document has no cell running and is quiet (the last cell may never run:
        ours cancels what was queued after an error, a POST may be refused)."""
        deadline = time.monotonic() + RUN_ALL_TIMEOUT
        while not done.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(done.wait(), 0.25)
            except TimeoutError:
                if self._quiet(cells):
                    return

    def _quiet(self, cells: list[Map[Any]]) -> bool:
        running = any(cell.get("execution_state") == "running" for cell in cells)
        return not running and time.perf_counter() - self._last_message >= QUIET

    async def _wait_quiet(self, cells: list[Map[Any]]) -> None:
        """Wait until no cell shows running and no Y message came for ``QUIET`` s: a
        misordered run may still have cells queued on the server (nbmodel marks a cell
        only when it starts)."""
        deadline = time.monotonic() + RUN_ALL_TIMEOUT
        while time.monotonic() < deadline and not self._quiet(cells):
            await asyncio.sleep(0.1)


class WebsocketSide:
    """Stock JupyterLab without server-side execution: the page sends each cell over
    its kernel websocket, on our server and our side's kernel, and shows the output
    from the messages that come back."""

    name = "websocket"
    variants = ("in order",)

    def __init__(self, ours: DocumentSide) -> None:
        self._ours = ours
        self._channel: KernelChannel | None = None
        self._sources: list[str] = []
        self.results = SideResults()

    async def start(self, workload: str, sources: list[str]) -> None:
        """Connect to our side's kernel of ``workload`` (started before this)."""
        await self.aclose()
        self._channel = KernelChannel(_kernel_ws_url(self._ours.server, self._ours.kernel_id))
        await self._channel.connect()
        self._sources = sources
        if sources[-1] == WARM_UP:  # our side ran it on this kernel already
            await self.run_cell(0)
        else:
            await self.run_all(shuffled=False, rng=random.Random(0))

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def run_cell(self, index: int) -> Timing:
        assert self._channel is not None, "start a workload first"
        wall, sent_at = time.time(), time.perf_counter()
        run = await self._channel.execute(self._sources[index])
        await asyncio.wait_for(run.streamed.wait(), CELL_TIMEOUT)
        await asyncio.wait_for(run.idle.wait(), CELL_TIMEOUT)
        printed = float("".join(run.stdout).split()[-1])
        return Timing(sent_at, run.first_stream_at, printed - wall)

    async def run_all(
        self, *, shuffled: bool, rng: random.Random, one_at_a_time: bool = False
    ) -> RunAllResult:
        """100 ``execute_request``s sent at once, in order; done at the last idle
        (or the last reply, for requests the kernel aborted after an error)."""
        assert self._channel is not None and not shuffled and not one_at_a_time
        start = time.perf_counter()
        runs = [await self._channel.execute(source) for source in self._sources]
        try:
            for run in runs:
                await asyncio.wait_for(run.replied.wait(), RUN_ALL_TIMEOUT)
                if run.reply_status != "aborted":
                    await asyncio.wait_for(run.idle.wait(), CELL_TIMEOUT)
        except TimeoutError:
            return RunAllResult(None, sum(r.reply_status == "ok" for r in runs), False, 0)
        end = max(max(r.idle_at, r.reply_at) for r in runs)
        expected = f"{list(range(len(runs)))}\n"
        return RunAllResult(
            seconds=end - start,
            ran=sum(r.reply_status == "ok" for r in runs),
            in_order=all(r.reply_status == "ok" for r in runs)
            and "".join(runs[-1].stdout) == expected,
            errors=sum(r.reply_status == "error" for r in runs),
        )


Side = DocumentSide | WebsocketSide

#: Run All's variants: (name, POSTs shuffled and delayed, one POST at a time).
_VARIANTS = {
    "in order": (False, False),
    "shuffled": (True, False),
    "one at a time": (False, True),
}


def _turns(sides: list[Side], round_: int) -> list[Side]:
    """The sides in this round's order: each goes first in turn."""
    k = round_ % len(sides)
    return sides[k:] + sides[:k]


class _Stopped:
    """Which sides failed (a timeout, a refused request): they get no more turns."""

    def __init__(self) -> None:
        self.why: dict[str, str] = {}

    async def attempt(self, side: Side, step: Callable[[], Awaitable[T]]) -> T | None:
        """``step()``, unless the side has stopped; None if it stops the side."""
        if side.name in self.why:
            return None
        try:
            return await step()
        except (TimeoutError, RuntimeError, OSError, ValueError) as e:
            self.why[side.name] = f"{type(e).__name__}: {e}"[:120]
            return None


async def _shift_enter(sides: list[Side], samples: int, stopped: _Stopped) -> None:
    sources = [PRINT_TIME] * SHIFT_CELLS + [WARM_UP]
    for side in sides:
        await stopped.attempt(side, partial(side.start, "shift", sources))
    await asyncio.sleep(SETTLE)
    for round_ in range(samples):
        for index in (0, FIFTIETH):
            for side in _turns(sides, round_):
                timing = await stopped.attempt(side, partial(side.run_cell, index))
                if timing is not None:
                    side.results.shift[index].append(timing)
                    await asyncio.sleep(SETTLE)


async def _chain(sides: list[Side], runs: int, stopped: _Stopped) -> None:
    sources = [PRINT_TIME] * CHAIN_CELLS + [WARM_UP]
    for side in sides:
        await stopped.attempt(side, partial(side.start, "chain", sources))
    await asyncio.sleep(SETTLE)

    async def chain(side: Side) -> list[Timing]:
        return [await side.run_cell(index) for index in range(CHAIN_CELLS)]

    for round_ in range(runs):
        for side in _turns(sides, round_):
            timings = await stopped.attempt(side, partial(chain, side))
            if timings is not None:
                side.results.chain.append(timings)
                await asyncio.sleep(SETTLE)


async def _run_all(sides: list[Side], runs: int, stopped: _Stopped) -> None:
    sources = run_all_sources(RUN_ALL_CELLS)
    for side in sides:
        await stopped.attempt(side, partial(side.start, "runall", sources))
    await asyncio.sleep(SETTLE)
    rng = random.Random(SEED)
    for round_ in range(runs):
        for side in _turns(sides, round_):
            for variant in side.variants:
                if f"{side.name}, {variant}" in stopped.why:
                    continue
                shuffled, one_at_a_time = _VARIANTS[variant]
                result = await stopped.attempt(
                    side,
                    partial(side.run_all, shuffled=shuffled, rng=rng, one_at_a_time=one_at_a_time),
                )
                if result is not None:
                    side.results.run_all.setdefault(variant, []).append(result)
                    failed = result.seconds is None or result.refused
                    if failed and side.name != "ours":  # one such run says it; they are slow
                        stopped.why[f"{side.name}, {variant}"] = "not repeated after a failed run"
                    await asyncio.sleep(SETTLE)


# -- the table -------------------------------------------------------------------------

HEADERS = [
    "workload", "side", "n", "p50 ms", "p99 ms", "POST→print p50", "POST answered p50",
    "vs websocket", "in order", "target", "each run (ms; ! = out of order)",
]  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _latency_row(
    workload: str,
    side: str,
    timings: list[Timing],
    floor: float | None,
    target: bool,
    per_post: bool = True,
) -> list[str]:
    """A row of latencies (seconds in ``timings``); ``floor``: the websocket's p50;
    ``per_post``: each timing is one POST's (not a chain's)."""
    if not timings:
        return [workload, side, "0"] + ["-"] * (len(HEADERS) - 3)
    values = [t.seconds for t in timings]
    p50 = median(values)
    extra = "-" if floor is None or side == "websocket" else f"{(p50 - floor) * 1000:+.1f} ms"
    verdict = "-"
    if target and floor is not None and side != "websocket":
        verdict = "yes" if p50 <= floor + TARGET_EXTRA_MS / 1000 else "NO"
    answered = "-"
    if per_post and side != "websocket":
        answered = _ms(median([t.answered for t in timings]))
    return [
        workload, side, f"{len(values)}", _ms(p50), _ms(nearest_rank(values, 0.99)),
        _ms(median([t.to_kernel for t in timings])), answered, extra, "-", verdict, "-",
    ]  # fmt: skip


def _run_all_row(
    variant: str, side: str, results: list[RunAllResult], floor: float | None
) -> list[str]:
    done = [r.seconds for r in results if r.seconds is not None]
    ordered = sum(r.in_order for r in results)
    each = " ".join(
        "unfinished" if r.seconds is None else f"{r.seconds * 1000:.0f}{'' if r.in_order else '!'}"
        for r in results
    )
    p50 = median(done) if done else None
    ratio = "-" if p50 is None or floor is None or side == "websocket" else f"{p50 / floor:.2f}x"
    verdict = "-"
    if side != "websocket":
        holds = bool(results) and ordered == len(results)
        if variant == "in order":
            fast = p50 is not None and floor is not None and p50 <= TARGET_RUN_ALL_RATIO * floor
            holds = holds and fast
        verdict = "yes" if holds else "NO"
    return [
        f"Run All {RUN_ALL_CELLS}, {variant}", side, f"{len(results)}",
        _ms(p50) if p50 is not None else "-",
        _ms(nearest_rank(done, 0.99)) if done else "-",
        "-", "-", ratio, f"{ordered}/{len(results)}", verdict, each,
    ]  # fmt: skip


def _totals(chains: list[list[Timing]]) -> list[Timing]:
    """Each chain as one timing, from its first send to its last output."""
    return [Timing(c[0].sent_at, c[-1].seen_at, c[-1].to_kernel) for c in chains if c]


def _rows(sides: list[Side]) -> tuple[list[list[str]], list[str], list[str]]:
    """The table's rows, the verdict on each target for ours, and what went wrong in
    the Run Alls that did not run in order."""
    by_name = {side.name: side.results for side in sides}
    ws = by_name.get("websocket", SideResults())
    rows: list[list[str]] = []
    verdicts: list[str] = []
    details: list[str] = []

    def floor_of(timings: list[Timing]) -> float | None:
        return median([t.seconds for t in timings]) if timings else None

    for index, label in ((0, "Shift+Enter, 1st code cell"), (FIFTIETH, "Shift+Enter, 50th")):
        floor = floor_of(ws.shift[index])
        for side in sides:
            rows.append(_latency_row(label, side.name, side.results.shift[index], floor, True))
        ours = rows[-len(sides)]
        verdicts.append(
            f"{label}: ours p50 {ours[3]} ms, websocket p50 "
            f"{_ms(floor) if floor is not None else '-'} ms + {TARGET_EXTRA_MS:.0f}: {ours[9]}"
        )
    chain_floor = floor_of([t for chain in ws.chain for t in chain])
    total_floor = floor_of(_totals(ws.chain))
    for side in sides:
        per_cell = [t for chain in side.results.chain for t in chain]
        label = f"{CHAIN_CELLS} cells in a row, each"
        rows.append(_latency_row(label, side.name, per_cell, chain_floor, False))
    for side in sides:
        label = f"{CHAIN_CELLS} cells in a row, total"
        totals = _totals(side.results.chain)
        rows.append(_latency_row(label, side.name, totals, total_floor, False, per_post=False))
    ws_runs = [r.seconds for r in ws.run_all.get("in order", []) if r.seconds is not None]
    run_all_floor = median(ws_runs) if ws_runs else None
    for variant in _VARIANTS:
        for side in sides:
            if variant in side.variants:
                results = side.results.run_all.get(variant, [])
                rows.append(_run_all_row(variant, side.name, results, run_all_floor))
                if not all(r.in_order for r in results):
                    details.append(
                        f"{side.name}, Run All {variant}: cells run / with an error / POSTs "
                        "refused, each run: "
                        + ", ".join(f"{r.ran}/{r.errors}/{r.refused}" for r in results)
                    )
                if side.name == "ours":
                    verdicts.append(
                        f"Run All {variant}: ours {rows[-1][8]} in document order, "
                        f"p50 {rows[-1][3]} ms ({rows[-1][7]} the websocket's "
                        f"{_ms(run_all_floor) if run_all_floor else '-'} ms): {rows[-1][9]}"
                    )
    return rows, verdicts, details


async def run(options: Options) -> Table:
    """Measure every workload on every side; return the table."""
    scale = options.repeat / 3
    samples = max(1, round((5 if options.quick else 30) * scale))
    chains = max(1, round((2 if options.quick else 10) * scale))
    run_alls = max(1, round((2 if options.quick else 5) * scale))
    table = Table(
        "LATENCY: Shift+Enter to first output and Run All, warm kernel, every side in turn "
        f"({samples} samples per cell, {chains} chains, {run_alls} Run Alls per variant)",
        HEADERS,
    )
    stopped = _Stopped()
    notes: list[str] = []
    async with AsyncExitStack() as stack:
        ours = DocumentSide(
            "ours", await stack.enter_async_context(ExtensionServer()),
            marks=True, page_kernel_ws=False,
        )  # fmt: skip
        sides: list[Side] = [ours, WebsocketSide(ours)]
        alternatives: list[AlternativeServer] = []
        for kind in ALTERNATIVES:
            try:
                server = await stack.enter_async_context(AlternativeServer(kind))
            except Exception as e:  # an alternative that cannot be installed or run here
                stopped.why[kind] = f"unavailable: {e!r}"[:120]
                continue
            alternatives.append(server)
            variants = ("in order", "shuffled") + (("one at a time",) * (kind == "nbmodel"))
            sides.append(
                DocumentSide(kind, server, marks=False, page_kernel_ws=True, variants=variants)
            )
        for side in sides:
            stack.push_async_callback(side.aclose)
        await _shift_enter(sides, samples, stopped)
        await _chain(sides, chains, stopped)
        await _run_all(sides, run_alls, stopped)
        notes += [f"{s.kind}: {s.polls} request polls in all" for s in alternatives if s.polls]
    rows, verdicts, details = _rows(sides)
    table.rows += rows
    holds = all(verdict.endswith(": yes") for verdict in verdicts)
    table.notes += [
        "Shift+Enter: from right before the POST (ours: the mark, then the POST) to the "
        "cell's new output in a y-websocket client's copy of the document; websocket: "
        "from the execute_request sent to the first stream message on the kernel "
        "websocket. Every sample waits for the cell to be idle again, then "
        f"{SETTLE} s (autosave, nbmodel's polls). p50: median; p99: nearest rank (of 30: "
        "the largest).",
        "POST→print: from the POST to the kernel's time.time() in the output (the rest is "
        "the output's way back); POST answered: the POST's round trip.",
        f"{CHAIN_CELLS} cells in a row: each cell's POST once the previous one is idle; "
        "each: per cell, total: first POST to the last output.",
        f"Run All {RUN_ALL_CELLS}: a chain x[i] = x[i - 1] + 1 (KeyError out of order), "
        "each cell appends its index, the last prints the list: in order = it printed "
        "0..99. Time: first POST to the last cell idle with its output (websocket: "
        "execute_requests sent at once in order, to the last idle). in order: marks and "
        "POSTs interleaved, all POSTs concurrent; shuffled: the marks first, then each "
        f"POST held back a random 0-{MAX_DELAY * 1000:.0f} ms (seed {SEED}), so they "
        "reach the server shuffled; one at a time: each POST after the previous one's "
        "answer (nbmodel's own page does that).",
        f"Pages: {PAGE_CONNECTIONS} HTTP connections per server, ?{{Date.now()}} on each "
        "execute POST, a kernel websocket open; only ours marks cells (its page does, "
        "the alternatives' pages do not).",
        f"targets (ours): Shift+Enter p50 <= websocket p50 + {TARGET_EXTRA_MS:.0f} ms; "
        f"Run All in document order every time; in order: p50 <= {TARGET_RUN_ALL_RATIO} x "
        "the websocket's. The target column applies the same test to each side.",
        *notes,
        *details,
        *(f"{name} stopped: {why}" for name, why in stopped.why.items()),
        *verdicts,
        f"every target holds: {'yes' if holds and 'ours' not in stopped.why else 'NO'}",
    ]
    return table
