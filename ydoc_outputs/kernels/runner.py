"""Runs queued cells on one kernel and writes their iopub output into rooms.

iopub batches (from the pump, pump.py) are routed by their parent msg_id to
(document, cell), reduced, and written with one Y transaction per room.

Only the pump's batches end running cells: a fault noticed elsewhere (the monitor's
poll, the restarter) wakes the pump, which first hands over every message that has
already arrived, then the cell is ended. So what a kernel printed before it died is
kept, and comes before the error output that says it died.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.jsonutil import json_default

from ..heap import HeapTrimmer
from ..outputs.capture import CAPTURED_TYPES
from ..outputs.ops import KernelMessage
from ..outputs.routing import ParentRouter, Route
from ..rooms.manager import RoomManager
from ..rooms.room import NotebookRoom
from .faults import CellWatch, Fault, KernelSnapshot, Verdict
from .gateway import is_gateway_kernel
from .monitor import POLL_INTERVAL, KernelMonitor
from .pump import IopubPump, KernelConnection
from .queue import DocumentView, ExecutionQueue, ExecutionRequest
from .websocket import tell_pages
from .widgets import WidgetStateWriter

__all__ = ["KernelRunner"]

log = logging.getLogger(__name__)

#: Seconds to wait for the answer to a ``kernel_info_request`` on iopub before asking
#: again: a subscription that is not connected yet silently drops what it misses.
HANDSHAKE_TIMEOUT = 1.0
#: Seconds between two updates of an Output widget's outputs sent to the pages.
TELL_INTERVAL = 0.1
#: How many cells are sent to the kernel behind the one that runs (see _work).
SEND_AHEAD = 8
#: Seconds a stopping kernel has to end its running cell (its KeyboardInterrupt usually
#: comes within milliseconds) before the cell is ended without its last output.
STOP_GRACE = 0.5

#: The connection fields that make a client talk to one kernel process.
_CONNECTION_KEYS = (
    "transport", "ip", "key", "shell_port", "iopub_port", "stdin_port", "control_port",
    "hb_port",
)  # fmt: skip


def _error_message(ename: str, evalue: str) -> KernelMessage:
    return {
        "header": {"msg_type": "error"},
        "content": {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]},
    }


_IDLE: KernelMessage = {"header": {"msg_type": "status"}, "content": {"execution_state": "idle"}}


class _Unusable(Exception):
    """The kernel cannot run cells now (shut down, or dead for good)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.value)
        self.fault = fault


@dataclass(eq=False)
class _Run:
    """The cell that runs now."""

    request: ExecutionRequest
    msg_id: str
    watch: CellWatch
    ended: asyncio.Future[Verdict] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: The kernel sent an error output for it.
    errored: bool = False
    #: Ends the wait for the last output once the kernel began to stop.
    grace: asyncio.TimerHandle | None = None
    #: The header date of the kernel's idle for it, for ``metadata.execution``.
    idle_date: object = None


class KernelRunner:
    """Executes cells on one kernel, one at a time, and writes their output."""

    def __init__(
        self,
        kernel_id: str,
        kernel_manager: Any,
        rooms: RoomManager,
        router: ParentRouter,
        *,
        order_grace: float,
        active: Callable[[str], set[str]] = lambda _document_id: set(),
        on_end: Callable[[ExecutionRequest], None] | None = None,
        on_gone: Callable[[KernelRunner], None] | None = None,
        poll_interval: float = POLL_INTERVAL,
        batch_interval: float = 0.0,
        trimmer: HeapTrimmer | None = None,
    ) -> None:
        """Prepare a runner; :meth:`start` connects it.

        Args:
            on_gone: Called once the kernel is no longer managed by the server (shut
                down); the runner has ended its cells and should be stopped.
            poll_interval: Seconds between two checks of the kernel's state.
            batch_interval: Seconds the pump waits after writing a batch before it reads
                again, so that output arriving meanwhile goes into one Y transaction.
            trimmer: Told how much stream text goes through, to give memory back after
                large output (see heap.py).
            order_grace: How long a document's expected cells are waited for after its
                last request (queue.py).
            active: The cells of a document taken to run, on any kernel (queue.py).
            on_end: Told of each request once it has ended (run, cancelled or refused).
        """
        self._trimmer = trimmer
        self.kernel_id = kernel_id
        self._rooms = rooms
        self._router = router
        self._on_gone = on_gone
        self._on_end = on_end
        self.queue = ExecutionQueue(
            self._document_view, active, grace=order_grace, on_stale=self._unmark
        )
        self._monitor = KernelMonitor(
            kernel_id,
            kernel_manager,
            on_snapshot=self._on_snapshot,
            on_restarter=self._on_restarter,
            wants_alive=lambda: self._running is not None,
            interval=poll_interval,
        )
        self._kernel: Any = self._monitor.kernel
        self._connection = KernelConnection(self._kernel, kernel_id, self._on_reply)
        self._pump = IopubPump(self._connection, self._handle, batch_interval)
        self.widgets = WidgetStateWriter(rooms)
        #: Output widgets given output in the last batches: their outputs and parent.
        self._captured_now: dict[str, tuple[list[Any], dict[str, Any]]] = {}
        self._tell_timer: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: While a batch is dispatched: the rooms of the cells it ended, to write once.
        self._ending: list[NotebookRoom] | None = None
        #: The session id of the kernel's last message: what the server sends a page as
        #: the kernel (kernels/websocket.py) carries it.
        self.kernel_session: str | None = None
        #: The cell that runs now, and the one taken from the queue that waits to run.
        self._running: _Run | None = None
        #: The cells sent to the kernel behind the running one, in order (see _work).
        self._ahead: collections.deque[_Run] = collections.deque()
        self._pending: ExecutionRequest | None = None
        #: kernel_info msg_id -> resolved when iopub delivers a message it caused.
        self._handshakes: dict[str, asyncio.Future[Any]] = {}
        #: Our iopub subscription is known to receive from this kernel process.
        self._connected = False
        self._connected_process: object | None = None
        #: The restarter gave up on this process: the kernel stays dead until it is
        #: restarted by hand (a new process).
        self._dead = False
        self._dead_process: object | None = None
        self._welcomed = asyncio.Event()
        #: :meth:`stop` was called; ``finished`` is set once it is done.
        self.stopped = False
        self.finished = asyncio.Event()

    @property
    def _client(self) -> Any:
        """The current kernel client (replaced after a fault)."""
        return self._connection.client

    async def start(self) -> None:
        await self._connection.open()
        self._tasks = [
            asyncio.create_task(self._pump.run()),
            asyncio.create_task(self._work()),
            asyncio.create_task(self._watch()),
        ]

    async def stop(self, fault: Fault = Fault.SERVER_STOPPED) -> None:
        """Stop; cells that run or wait end with an error output naming ``fault``."""
        if self.stopped:
            return
        self.stopped = True
        tasks = self.tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        run = self._running
        if run is not None:
            self._settle(run, Verdict(run.watch.fault or fault))
        if self._pending is not None:
            self._end(self._pending, *fault.cancelled())
            self._pending = None
        self._cancel_queued()
        if self._tell_timer is not None:
            self._tell_timer.cancel()
            self._tell_timer = None
        self.widgets.close()
        self._connection.close()
        self.finished.set()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The runner's tasks (all done once it is finished)."""
        return [*self._tasks, *self._connection.tasks]

    @property
    def running_msg_id(self) -> str | None:
        """The msg_id of the execute_request of the cell that runs now, if any."""
        return self._running.msg_id if self._running is not None else None

    def submit(self, request: ExecutionRequest, room: NotebookRoom) -> None:
        """Queue a cell; its outputs are cleared and it shows as running at once.

        A request of a run that an error ended (its cell was already marked when the
        error came) ends at once, as the kernel's ``stop_on_error`` aborts it in stock.
        """
        self._rooms.hold(room)
        if not self.queue.put(request):
            self._end(request, None, None)
            return
        self.widgets.runs_cells_of(request.document_id)
        room.reducer.start_cell(request.cell_id)
        room.writer.apply(room.reducer.flush())

    def _document_view(self, document_id: str, active: set[str]) -> DocumentView | None:
        """The code cells of a document as the queue needs them (queue.py)."""
        room = self._rooms.notebook_room(document_id)
        return room.cells.view(skip=active) if room is not None else None

    def _unmark(self, document_id: str, cell_ids: set[str]) -> None:
        unmark(self._rooms.notebook_room(document_id), cell_ids)

    # -- the kernel's lifecycle --------------------------------------------------------

    async def _watch(self) -> None:
        await self._monitor.run()
        # The kernel is gone (shut down): let the pump write what arrived and end the
        # running cell, then have the owner stop this runner.
        await self._pump.drain()
        log.info("kernel %s is gone; its runner stops", self.kernel_id)
        if self._on_gone is not None:
            self._on_gone(self)

    def _on_snapshot(self, snapshot: KernelSnapshot) -> None:
        if snapshot.stopping or snapshot.process is not self._connected_process:
            self._connected = False
        run = self._running
        if run is not None:
            run.watch.observe(snapshot)
            self._watched(run)

    def _on_restarter(self, gave_up: bool) -> None:
        self._connected = False
        if gave_up:
            self._dead = True
            self._dead_process = self._monitor.snapshot().process
            self._cancel_queued()
        run = self._running
        if run is not None:
            run.watch.restarter_fired()
            self._watched(run)

    def _watched(self, run: _Run) -> None:
        """React to what ``run``'s watch has just learnt."""
        if run.watch.stopping and run.grace is None:
            loop = asyncio.get_running_loop()
            run.grace = loop.call_later(STOP_GRACE, self._stop_overdue, run)
        if run.watch.verdict() is not None:
            self._pump.wake()  # the cell ends after what has arrived

    def _stop_overdue(self, run: _Run) -> None:
        if self._running is run:
            run.watch.stop_overdue()
            self._watched(run)

    # -- iopub batches (from the pump) -------------------------------------------------

    async def _handle(self, batch: list[KernelMessage]) -> None:
        """Write a batch, then end the running cell if how it ends is known now."""
        if batch:
            await self._dispatch(batch)
        self._evaluate()

    async def _dispatch(self, batch: list[KernelMessage]) -> None:
        # The cells a batch ends are written with the batch's output, one transaction
        # per room: a Run All's batch often ends several cells (see _end).
        ending: list[NotebookRoom] = []
        self._ending = ending
        if batch:
            session = batch[-1].get("header", {}).get("session")
            if isinstance(session, str):
                self.kernel_session = session
        try:
            await self._dispatch_messages(batch, ending)
        finally:
            self._ending = None
            for room in {room.name: room for room in ending}.values():
                room.writer.apply(room.reducer.flush())
            for room in ending:
                self._rooms.release(room)

    async def _dispatch_messages(
        self, batch: list[KernelMessage], ending: list[NotebookRoom]
    ) -> None:
        touched: dict[str, NotebookRoom] = {}
        reopened: list[NotebookRoom] = []
        for msg in batch:
            parent_id = msg.get("parent_header", {}).get("msg_id", "")
            msg_type = msg.get("header", {}).get("msg_type", "")
            content = msg.get("content", {})
            run = self._running
            ours = run is not None and parent_id == run.msg_id
            if msg_type.startswith("comm_"):
                # Widget models, whatever their parent: a page's change comes back as
                # an echo_update whose parent is the page's own request.
                self.widgets.feed(msg)
            if msg_type in CAPTURED_TYPES and ours:
                # Inside `with out:` (an Output widget) in a cell the server runs: its
                # output, not the cell's. (Output a page's own request causes, such as an
                # `interact` callback when a slider moves, that page captures itself.)
                target = self.widgets.states.capturing(parent_id)
                if target is not None:
                    outputs = self.widgets.capture(target, msg)
                    parent: dict[str, Any] = dict(msg.get("parent_header") or {})
                    self._captured_now[target] = (outputs, parent)
                    continue
            if msg_type == "iopub_welcome":
                # ipykernel >= 7 greets each new subscription: a handshake whose
                # answer was published before it may ask again right away.
                self._welcomed.set()
            elif msg_type == "status":
                state = content.get("execution_state")
                handshake = self._handshakes.get(parent_id)
                if handshake is not None and not handshake.done():
                    handshake.set_result(None)
                if state == "starting":
                    # A new kernel process: the one we knew (and its cell) is gone.
                    self._connected = False
                    self.widgets.kernel_started()
                    if run is not None:
                        run.watch.kernel_started()
                elif state in ("restarting", "dead") and not parent_id:
                    # Not the kernel's: jupyter_server's kernel websocket says so to its
                    # clients when its restarter found the kernel dead. Only a gateway's
                    # kernel is read through one, and only this tells it died there.
                    self._on_restarter(False)
                elif state == "idle" and ours:
                    assert run is not None
                    # Written when the cell is settled, with a fault's error if any.
                    # Look at the kernel manager now, not at its last poll: a restart or
                    # shutdown marks the kernel as stopping before it interrupts the cell,
                    # so an idle caused by that interrupt is never taken for a normal end.
                    run.watch.observe(self._monitor.snapshot())
                    run.watch.finish()
                    run.idle_date = msg.get("header", {}).get("date")
                    # Ended now, not after the batch: the rest of it may be the next
                    # cell's, sent behind this one, which becomes the running cell.
                    self._evaluate()
                    continue
            elif msg_type == "shutdown_reply":
                # ipykernel broadcasts it the moment it is asked to shut down.
                self._connected = False
                if run is not None:
                    run.watch.shutdown_reply(bool(content.get("restart")))
                    self._watched(run)
            elif msg_type == "error" and ours:
                assert run is not None
                run.errored = True
            route = self._router.get(parent_id) if parent_id else None
            if route is None:
                continue
            room = self._rooms.notebook_room(route.document_id)
            if room is None:
                # Late output (a background thread) for a closed room: reopen it.
                try:
                    room = await self._rooms.get_notebook_room(route.document_id)
                except Exception:
                    log.warning("dropping output for %s: cannot reopen it", route.document_id)
                    continue
                reopened.append(room)
            if msg_type == "stream" and self._trimmer is not None:
                text = content.get("text")
                self._trimmer.note(len(text) if isinstance(text, str) else 0)
            room.reducer.feed(route.cell_id, msg)
            touched[room.name] = room
        for room in touched.values():
            if room not in ending:  # else written with the cells it ends, after this
                room.writer.apply(room.reducer.flush())
        for room in reopened:
            self._rooms.maybe_clean_up(room)
        if self._captured_now:
            self.widgets.settle_captured()
            self._schedule_tell_pages()

    def _schedule_tell_pages(self) -> None:
        """The pages see an Output widget's new outputs, at most every TELL_INTERVAL."""
        if self._tell_timer is None:
            loop = asyncio.get_running_loop()
            self._tell_timer = loop.call_later(TELL_INTERVAL, self._tell_pages)

    def _tell_pages(self) -> None:
        self._tell_timer = None
        captured, self._captured_now = self._captured_now, {}
        for comm_id, (outputs, parent) in captured.items():
            tell_pages(self.kernel_id, comm_id, {"outputs": outputs}, parent)

    def _sync_captured(self) -> None:
        """Give the kernel the outputs the server put into its Output widgets, as a
        page would have: its model then holds them, and ipywidgets echoes them."""
        if self._tell_timer is not None:
            self._tell_timer.cancel()
            self._tell_pages()
        for comm_id, outputs in self.widgets.take_captured():
            content = {
                "comm_id": comm_id,
                "data": {"method": "update", "state": {"outputs": outputs}, "buffer_paths": []},
            }
            try:
                self._connection.send_shell("comm_msg", content)
            except Exception:
                log.warning("could not give kernel %s the outputs of widget %s",
                            self.kernel_id, comm_id, exc_info=True)  # fmt: skip

    # -- execution ---------------------------------------------------------------------

    async def _work(self) -> None:
        """Send queued cells to the kernel, up to ``SEND_AHEAD`` behind the running one.

        The kernel runs execute requests in the order it gets them, so the next cells are
        sent while the running one still runs: each starts the moment the kernel is free,
        as when a page sends all of a Run All at once, instead of after a round trip
        through the server. With one cell ahead the kernel still waited for the server
        whenever the server was busy with the page's requests (Run All of 100 cells:
        1.46x the kernel websocket's time, against 1.13-1.23x with 8 ahead; see
        docs/performance.md). Cells are sent only behind a cell that has not failed nor
        met a fault: with ``stop_on_error`` the kernel aborts those sent after a cell
        that fails (busy, an aborted reply and idle, without a count: as stock leaves a
        cell that did not run), and the ones still queued here are cancelled.
        """
        while True:
            while len(self._ahead) >= SEND_AHEAD and self._running is not None:
                await asyncio.wait({self._running.ended})
            request = await self.queue.get()
            head = self._running
            if head is not None and not self._may_follow(head):
                # Back into the queue: an error of the running cell cancels it there.
                self.queue.put_back(request)
                await asyncio.wait({head.ended})
                continue
            if head is None:
                self._pending = request
                try:
                    await self._handshake()
                except _Unusable as e:
                    self._pending = None
                    self._end(request, *e.fault.cancelled())
                    self._cancel_queued()
                    continue
                self._pending = None
            try:
                self._send(request)
            except Exception:
                log.exception("execution of cell %s failed", request.cell_id)
                self._end(request, "ServerError", "ydoc-outputs could not run this cell")

    def _may_follow(self, head: _Run) -> bool:
        """Whether a cell may be sent behind ``head`` now."""
        return (
            self._connected
            and not head.errored
            and not head.ended.done()
            and not head.watch.stopping
            and head.watch.verdict() is None
        )

    async def _handshake(self) -> None:
        """Wait until iopub delivers from the kernel's current process.

        zmq drops what is published before the subscription is made, and a restarted
        kernel is a new publisher: executing before the subscription has reconnected
        would lose the cell's output and its idle, leaving it running forever.
        """
        while True:
            snapshot = self._monitor.snapshot()
            if self._dead and snapshot.process is self._dead_process:
                raise _Unusable(Fault.DIED)
            if not snapshot.present:
                raise _Unusable(Fault.SHUT_DOWN)
            if snapshot.stopping:
                await self._monitor.next_snapshot()
                continue
            if self._connected and snapshot.process is self._connected_process:
                return
            await self._follow_connection()
            # After a fault the pump replaces the client; a gateway's connects in a
            # thread, meanwhile the old one is closed: ask through its successor.
            await self._pump.drain()
            self._welcomed.clear()
            try:
                msg_id = self._connection.send_shell("kernel_info_request", {})
            except Exception as e:  # a gateway client's websocket closed under it
                log.warning("kernel %s: cannot ask kernel_info (%r); reconnecting",
                            self.kernel_id, e)  # fmt: skip
                self._pump.renew()
                continue
            answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._handshakes[msg_id] = answered
            welcomed: asyncio.Future[Any] = asyncio.ensure_future(self._welcomed.wait())
            try:
                await asyncio.wait(
                    {answered, welcomed}, timeout=HANDSHAKE_TIMEOUT,
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
            finally:
                welcomed.cancel()
                self._handshakes.pop(msg_id, None)
            if not answered.done():
                if not self._welcomed.is_set() and is_gateway_kernel(self._kernel):
                    # A gateway's websocket opened while the gateway restarted the
                    # kernel on new ports stays tied to the old ones: connect anew.
                    self._pump.renew()
                    await self._pump.drain()
                continue
            after = self._monitor.snapshot()
            if after.present and not after.stopping and after.process is snapshot.process:
                self._connected = True
                self._connected_process = snapshot.process
                return

    async def _follow_connection(self) -> None:
        """Make a new client if the kernel now listens elsewhere (restarted on new ports)."""
        try:
            wanted = self._kernel.get_connection_info()
            current = self._client.get_connection_info()
        except Exception:
            return  # a kernel manager without connection info (remote): nothing to follow
        if all(wanted.get(k) == current.get(k) for k in _CONNECTION_KEYS):
            return
        log.info("kernel %s listens on new ports; reconnecting", self.kernel_id)
        self._pump.renew()
        await self._pump.drain()

    def _send(self, request: ExecutionRequest) -> None:
        """Send a cell to the kernel: it runs now, or next behind the running one."""
        room = self._rooms.notebook_room(request.document_id)
        if room is None:  # cannot happen while held, but never hang on it
            self._end(request, None, None)
            return
        room.reducer.start_cell(request.cell_id, again=True)
        room.writer.apply(room.reducer.flush())
        process = self._monitor.snapshot().process
        msg_id = self._connection.send_shell("execute_request", {
            "code": request.code, "silent": False, "store_history": True,
            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True,
        })  # fmt: skip
        self._router.add(msg_id, Route(request.document_id, request.cell_id))
        run = _Run(request, msg_id, CellWatch(process))
        if self._running is None:
            self._running = run
        else:
            self._ahead.append(run)

    def _evaluate(self) -> None:
        """End the running cell if how it ends is known (called by the pump)."""
        run = self._running
        if run is None:
            return
        verdict = run.watch.verdict()
        if verdict is not None:
            self._settle(run, verdict)

    def _on_reply(self, reply: Any) -> None:
        """A shell reply: an execute reply's times go into its cell's timing."""
        try:
            if reply.get("msg_type") != "execute_reply":
                return
            route = self._router.get(reply.get("parent_header", {}).get("msg_id", ""))
            room = self._rooms.notebook_room(route.document_id) if route is not None else None
            if route is None or room is None or not room.reducer.record_timing:
                return
            started = reply.get("metadata", {}).get("started")
            date = reply.get("header", {}).get("date")
            room.reducer.record(route.cell_id, "shell.execute_reply.started", _iso(started))
            room.reducer.record(route.cell_id, "shell.execute_reply", _iso(date))
            room.writer.apply(room.reducer.flush())
        except Exception:
            log.exception("cannot record the timing of a reply of kernel %s", self.kernel_id)

    def _settle(self, run: _Run, verdict: Verdict) -> None:
        """End the running cell: idle, after an error output if a fault cut it short."""
        if self._running is not run:
            return
        following = list(self._ahead)
        self._running = self._ahead.popleft() if self._ahead else None
        if run.grace is not None:
            run.grace.cancel()
        self._sync_captured()
        self.widgets.cell_ended()
        fault = verdict.fault
        if fault is not None:
            # Whatever the old process would still send for this request is stale.
            self._router.discard(run.msg_id)
            self._connected = False
            self._pump.renew()
            self._end(run.request, *fault.error())
            if following:
                # Sent to a process that is gone: they will never run.
                self._running = None
                self._ahead.clear()
                for sent in following:
                    self._router.discard(sent.msg_id)
                    self._end(sent.request, None, None)
                    if not sent.ended.done():
                        sent.ended.set_result(verdict)
            self._cancel_queued()
        else:
            self._end(run.request, None, None, idle_date=run.idle_date)
            if run.errored:
                # Like stop_on_error in the classic frontend: an error aborts the queue,
                # and what the page is still sending of the same run.
                self._cancel_queued()
                document_id = run.request.document_id
                self._unmark(document_id, self.queue.abort_expected(document_id))
        if not run.ended.done():
            run.ended.set_result(verdict)

    def _cancel_queued(self) -> None:
        """End the queued cells, which will not run: as stock JupyterLab leaves them, idle
        with no output and no count (``[ ]``), as they were since queued. Only the cell
        that was running says what happened."""
        for request in self.queue.take_all():
            self._end(request, None, None)

    def _end(
        self,
        request: ExecutionRequest,
        ename: str | None,
        evalue: str | None,
        *,
        idle_date: object = None,
    ) -> None:
        """End a request that will get no (more) kernel output, releasing its room.
        ``idle_date``: the header date of the kernel's idle, when it ended normally."""
        if self._on_end is not None:
            self._on_end(request)
        room = self._rooms.notebook_room(request.document_id)
        if room is None:
            return
        if ename is not None and evalue is not None:
            room.reducer.feed(request.cell_id, _error_message(ename, evalue))
        room.reducer.record(request.cell_id, "iopub.status.idle", idle_date)
        room.reducer.feed(request.cell_id, _IDLE)
        if self._ending is not None:
            self._ending.append(room)  # written and released once the batch is
            return
        room.writer.apply(room.reducer.flush())
        self._rooms.release(room)


def unmark(room: NotebookRoom | None, cell_ids: set[str]) -> None:
    """Show as idle cells a page marked running whose request never came (or that an
    error aborted)."""
    if room is None or not cell_ids:
        return
    log.info("cells %s of %s were marked to run, but not run", sorted(cell_ids), room.name)
    for cell_id in sorted(cell_ids):
        room.reducer.feed(cell_id, _IDLE)
    room.writer.apply(room.reducer.flush())


def _iso(date: object) -> object:
    """A date of a deserialized message as the page gets it (jupyter_server's JSON)."""
    return json_default(date) if isinstance(date, datetime.datetime) else date
