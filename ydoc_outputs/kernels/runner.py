"""The server's own client of one kernel: runs queued cells and pumps iopub into rooms.

iopub messages are read in batches (whatever has arrived), routed by their parent
msg_id to (document, cell), reduced, and written with one Y transaction per room.

One task, the pump, is the only reader of iopub, and it alone ends running cells: a
fault noticed elsewhere (the monitor's poll, the restarter) wakes it, it first writes
every message that has already arrived, then ends the cell. So what a kernel printed
before it died is kept, and comes before the error output that says it died.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.session import new_id

from ..heap import HeapTrimmer
from ..outputs.ops import KernelMessage
from ..outputs.routing import ParentRouter, Route
from ..rooms.manager import RoomManager
from ..rooms.room import NotebookRoom
from .faults import CellWatch, Fault, KernelSnapshot, Verdict
from .iopub import IopubReader
from .monitor import POLL_INTERVAL, KernelMonitor
from .queue import ExecutionQueue, ExecutionRequest

__all__ = ["KernelRunner"]

log = logging.getLogger(__name__)

#: Upper bound of iopub messages reduced into one Y transaction.
MAX_BATCH = 1000
#: Seconds to wait for the answer to a ``kernel_info_request`` on iopub before asking
#: again: a subscription that is not connected yet silently drops what it misses.
HANDSHAKE_TIMEOUT = 1.0
#: Longest pause after repeated failures to read from the kernel.
MAX_BACKOFF = 1.0
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


class KernelRunner:
    """Executes cells on one kernel, one at a time, and writes their output."""

    def __init__(
        self,
        kernel_id: str,
        kernel_manager: Any,
        rooms: RoomManager,
        router: ParentRouter,
        order_window: float,
        *,
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
        """
        self._batch_interval = batch_interval
        self._trimmer = trimmer
        self.kernel_id = kernel_id
        self._rooms = rooms
        self._router = router
        self._on_gone = on_gone
        self.queue = ExecutionQueue(order_window)
        self._monitor = KernelMonitor(
            kernel_id,
            kernel_manager,
            on_snapshot=self._on_snapshot,
            on_restarter=self._on_restarter,
            wants_alive=lambda: self._running is not None,
            interval=poll_interval,
        )
        self._kernel: Any = self._monitor.kernel
        self._client: Any = None
        self._reader: IopubReader = None  # type: ignore[assignment]  # set by start
        #: The pump replaces the client before its next read (see _renew_client).
        self._renew = False
        self._tasks: list[asyncio.Task[None]] = []
        self._shell_task: asyncio.Task[None] | None = None
        #: The cell that runs now, and the one taken from the queue that waits to run.
        self._running: _Run | None = None
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
        self._wake = asyncio.Event()
        self._barriers: list[asyncio.Future[None]] = []
        #: :meth:`stop` was called; ``finished`` is set once it is done.
        self.stopped = False
        self.finished = asyncio.Event()

    async def start(self) -> None:
        self._client = await self._new_client()
        self._reader = IopubReader(self._client)
        self._tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._work()),
            asyncio.create_task(self._watch()),
        ]
        self._shell_task = asyncio.create_task(self._drain_shell(self._client))

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
        self._cancel_queued(fault)
        if self._client is not None:
            self._client.stop_channels()
        self.finished.set()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The runner's tasks (all done once it is finished)."""
        return [*self._tasks, *([self._shell_task] if self._shell_task else [])]

    def submit(self, request: ExecutionRequest, room: NotebookRoom) -> None:
        """Queue a cell; its outputs are cleared and it shows as running at once."""
        self._rooms.hold(room)
        room.reducer.start_cell(request.cell_id)
        room.writer.apply(room.reducer.flush())
        self.queue.put(request)

    async def _new_client(self) -> Any:
        client = self._kernel.client()
        session = getattr(client, "session", None)
        if session is not None:
            # The client's session is a clone of the kernel manager's, whose counter
            # starts again at 0: without an id of its own, our msg_ids would repeat
            # those of the manager's shutdown and kernel_info requests (and of our
            # previous client), and their replies would be taken for a cell's.
            session.session = new_id()
        # Only shell and iopub: no stdin (input() is refused) and no heartbeat thread.
        started = client.start_channels(
            shell=True, iopub=True, stdin=False, hb=False, control=False
        )
        if inspect.isawaitable(started):  # the gateway's client connects a websocket
            await started
        return client

    # -- the kernel's lifecycle --------------------------------------------------------

    async def _watch(self) -> None:
        await self._monitor.run()
        # The kernel is gone (shut down): let the pump write what arrived and end the
        # running cell, then have the owner stop this runner.
        await self._drain()
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
            self._cancel_queued(Fault.DIED)
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
            self._wake.set()  # the pump ends the cell, after what has arrived

    def _stop_overdue(self, run: _Run) -> None:
        if self._running is run:
            run.watch.stop_overdue()
            self._watched(run)

    # -- iopub -------------------------------------------------------------------------

    async def _pump(self) -> None:
        getter: asyncio.Future[list[KernelMessage]] | None = None
        waker: asyncio.Future[Any] | None = None
        failures = 0
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(self._reader.first())
                if waker is None:
                    waker = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({getter, waker}, return_when=asyncio.FIRST_COMPLETED)
                barriers: list[asyncio.Future[None]] = []
                if waker.done():
                    waker = None
                    self._wake.clear()
                    barriers, self._barriers = self._barriers, []
                    if not getter.done():
                        # Nothing is lost: a pending read has taken no message yet.
                        getter.cancel()
                        await asyncio.wait({getter})
                batch: list[KernelMessage] = []
                if getter.done():
                    failed = self._failed_read(getter)
                    failures = failures + 1 if failed else 0
                    if not failed and not getter.cancelled():
                        batch += getter.result()
                    getter = None
                    # No read is pending: take whatever else has arrived, without waiting.
                    batch += await self._read_ready(MAX_BATCH - len(batch))
                try:
                    await self._handle(batch)
                except Exception:
                    log.exception("error while handling output of kernel %s", self.kernel_id)
                if self._renew and getter is None:
                    await self._swap_client()
                for barrier in barriers:
                    if not barrier.done():
                        barrier.set_result(None)
                if failures:
                    # A broken connection must not spin: back off until it heals.
                    await asyncio.sleep(min(0.05 * 2**failures, MAX_BACKOFF))
                else:
                    # Let websockets, keep-alives and HTTP requests run between batches.
                    # After output, wait a little: a kernel that prints one line per
                    # millisecond then costs one transaction, one stored update and one
                    # message per client per interval, not per line. After quiet, the
                    # first message is written at once.
                    await asyncio.sleep(self._batch_interval if batch else 0)
        finally:
            for future in (getter, waker):
                if future is not None:
                    future.cancel()

    def _failed_read(self, getter: asyncio.Future[list[KernelMessage]]) -> bool:
        """Whether a completed read failed (logged); an empty or cancelled one did not."""
        if getter.cancelled():
            return False
        error = getter.exception()
        if error is None or isinstance(error, queue.Empty):
            return False  # queue.Empty: the gateway's client gives up waiting after 1 s
        log.warning("cannot read output of kernel %s: %r", self.kernel_id, error)
        return True

    async def _handle(self, batch: list[KernelMessage]) -> None:
        """Write a batch, then end the running cell if how it ends is known now."""
        if batch:
            await self._dispatch(batch)
        self._evaluate()

    async def _read_ready(self, limit: int) -> list[KernelMessage]:
        """Read up to ``limit`` messages that have arrived, without waiting for more."""
        try:
            return await self._reader.more(limit)
        except Exception as e:
            log.warning("cannot read output of kernel %s: %r", self.kernel_id, e)
            return []

    async def _drain(self) -> None:
        """Return once the pump has written every message that had arrived by now."""
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers.append(barrier)
        self._wake.set()
        await barrier

    async def _dispatch(self, batch: list[KernelMessage]) -> None:
        touched: dict[str, NotebookRoom] = {}
        reopened: list[NotebookRoom] = []
        for msg in batch:
            parent_id = msg.get("parent_header", {}).get("msg_id", "")
            msg_type = msg.get("header", {}).get("msg_type", "")
            content = msg.get("content", {})
            run = self._running
            ours = run is not None and parent_id == run.msg_id
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
                    if run is not None:
                        run.watch.kernel_started()
                elif state == "idle" and ours:
                    assert run is not None
                    # Written when the cell is settled, with a fault's error if any.
                    # Look at the kernel manager now, not at its last poll: a restart or
                    # shutdown marks the kernel as stopping before it interrupts the cell,
                    # so an idle caused by that interrupt is never taken for a normal end.
                    run.watch.observe(self._monitor.snapshot())
                    run.watch.finish()
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
            room.writer.apply(room.reducer.flush())
        for room in reopened:
            self._rooms.maybe_clean_up(room)

    async def _drain_shell(self, client: Any) -> None:
        # Replies are not needed (iopub carries everything), but must not pile up.
        failures = 0
        while True:
            try:
                await client.get_shell_msg()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                await asyncio.sleep(min(0.05 * 2**failures, MAX_BACKOFF))

    def _renew_client(self) -> None:
        """Have the pump replace the client with a new one, as soon as no read is pending.

        Closing the old client's sockets (linger 0) also discards requests still queued
        for a kernel that is gone: zmq would otherwise deliver them to its successor,
        which would run a cell the document says did not run.
        """
        self._renew = True
        self._wake.set()

    async def _swap_client(self) -> None:
        """Replace the client (called by the pump, while no read is pending)."""
        self._renew = False
        if self._shell_task is not None:
            self._shell_task.cancel()
        self._client.stop_channels()
        try:
            self._client = await self._new_client()
            self._reader = IopubReader(self._client)
        except Exception:
            # Reads from the stopped client fail and back off; then this is tried again.
            log.exception("cannot reconnect to kernel %s", self.kernel_id)
            self._renew = True
        self._shell_task = asyncio.create_task(self._drain_shell(self._client))

    # -- execution ---------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            request = await self.queue.get()
            self._pending = request
            try:
                await self._handshake()
            except _Unusable as e:
                self._pending = None
                self._end(request, *e.fault.cancelled())
                self._cancel_queued(e.fault)
                continue
            self._pending = None
            try:
                await self._run(request)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution of cell %s failed", request.cell_id)
                if self._running is not None and self._running.request is request:
                    self._running = None
                self._end(request, "ServerError", "ydoc-outputs could not run this cell")

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
            self._welcomed.clear()
            msg_id = self._client.kernel_info()
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
        self._renew_client()
        await self._drain()

    async def _run(self, request: ExecutionRequest) -> None:
        room = self._rooms.notebook_room(request.document_id)
        if room is None:  # cannot happen while held, but never hang on it
            return
        room.reducer.start_cell(request.cell_id)
        room.writer.apply(room.reducer.flush())
        process = self._monitor.snapshot().process
        msg_id = self._client.execute(request.code, allow_stdin=False, stop_on_error=True)
        self._router.add(msg_id, Route(request.document_id, request.cell_id))
        run = _Run(request, msg_id, CellWatch(process))
        self._running = run
        await run.ended

    def _evaluate(self) -> None:
        """End the running cell if how it ends is known (called by the pump)."""
        run = self._running
        if run is None:
            return
        verdict = run.watch.verdict()
        if verdict is not None:
            self._settle(run, verdict)

    def _settle(self, run: _Run, verdict: Verdict) -> None:
        """End the running cell: idle, after an error output if a fault cut it short."""
        if self._running is not run:
            return
        self._running = None
        if run.grace is not None:
            run.grace.cancel()
        fault = verdict.fault
        if fault is not None:
            # Whatever the old process would still send for this request is stale.
            self._router.discard(run.msg_id)
            self._connected = False
            self._renew_client()
            self._end(run.request, *fault.error())
            self._cancel_queued(fault)
        else:
            self._end(run.request, None, None)
            if run.errored:
                # Like stop_on_error in the classic frontend: an error aborts the queue.
                self._cancel_queued(None)
        if not run.ended.done():
            run.ended.set_result(verdict)

    def _cancel_queued(self, fault: Fault | None) -> None:
        for request in self.queue.take_all():
            if fault is None:
                self._end(request, None, None)
            else:
                self._end(request, *fault.cancelled())

    def _end(self, request: ExecutionRequest, ename: str | None, evalue: str | None) -> None:
        """End a request that will get no (more) kernel output, releasing its room."""
        room = self._rooms.notebook_room(request.document_id)
        if room is None:
            return
        if ename is not None and evalue is not None:
            room.reducer.feed(request.cell_id, _error_message(ename, evalue))
        room.reducer.feed(request.cell_id, _IDLE)
        room.writer.apply(room.reducer.flush())
        self._rooms.release(room)
