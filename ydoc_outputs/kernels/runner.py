"""The server's own client of one kernel: runs queued cells and pumps iopub into rooms.

iopub messages are read in batches (whatever has arrived), routed by their parent
msg_id to (document, cell), reduced, and written with one Y transaction per room.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from typing import Any

from jupyter_core.utils import ensure_async

from ..outputs.ops import KernelMessage
from ..outputs.routing import ParentRouter, Route
from ..rooms.manager import RoomManager
from ..rooms.room import NotebookRoom
from .queue import ExecutionQueue, ExecutionRequest

__all__ = ["KernelRunner"]

log = logging.getLogger(__name__)

#: Upper bound of iopub messages reduced into one Y transaction.
MAX_BATCH = 1000
#: How often a running cell checks that its kernel is still the same live process.
WATCHDOG_INTERVAL = 1.0


def _error_message(ename: str, evalue: str) -> KernelMessage:
    return {
        "header": {"msg_type": "error"},
        "content": {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]},
    }


_IDLE: KernelMessage = {"header": {"msg_type": "status"}, "content": {"execution_state": "idle"}}


class KernelRunner:
    """Executes cells on one kernel, one at a time, and writes their output."""

    def __init__(
        self,
        kernel_id: str,
        kernel_manager: Any,
        rooms: RoomManager,
        router: ParentRouter,
        order_window: float,
    ) -> None:
        self.kernel_id = kernel_id
        self._kernels = kernel_manager
        self._rooms = rooms
        self._router = router
        self.queue = ExecutionQueue(order_window)
        self._client: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        #: msg_id -> future resolved when the kernel reports idle for that request.
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._errored: set[str] = set()
        self._ready = asyncio.Event()

    @property
    def _kernel(self) -> Any:
        return self._kernels.get_kernel(self.kernel_id)

    async def start(self) -> None:
        self._client = self._kernel.client()
        self._client.start_channels()
        self._tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._drain_shell()),
            asyncio.create_task(self._work()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for request in self.queue.take_all():
            self._end(request, "Cancelled", "the server stopped before this cell ran")
        if self._client is not None:
            self._client.stop_channels()

    def submit(self, request: ExecutionRequest, room: NotebookRoom) -> None:
        """Queue a cell; its outputs are cleared and it shows as running at once."""
        self._rooms.hold(room)
        room.reducer.start_cell(request.cell_id)
        room.writer.apply(room.reducer.flush())
        self.queue.put(request)

    # -- iopub -------------------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            try:
                batch = [await self._client.get_iopub_msg()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(await self._client.get_iopub_msg(timeout=0))
                    except queue.Empty:
                        break
                await self._dispatch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("error while handling output of kernel %s", self.kernel_id)
            # Let websockets, keep-alives and HTTP requests run between batches.
            await asyncio.sleep(0)

    async def _dispatch(self, batch: list[KernelMessage]) -> None:
        touched: dict[str, NotebookRoom] = {}
        reopened: list[NotebookRoom] = []
        finished: list[str] = []
        for msg in batch:
            parent_id = msg.get("parent_header", {}).get("msg_id", "")
            msg_type = msg.get("header", {}).get("msg_type", "")
            content = msg.get("content", {})
            if msg_type == "status":
                if content.get("execution_state") == "idle" and parent_id in self._waiters:
                    finished.append(parent_id)
                self._ready.set()
            elif msg_type == "error" and parent_id in self._waiters:
                self._errored.add(parent_id)
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
            room.reducer.feed(route.cell_id, msg)
            touched[room.name] = room
        for room in touched.values():
            room.writer.apply(room.reducer.flush())
        for room in reopened:
            self._rooms.maybe_clean_up(room)
        for msg_id in finished:
            waiter = self._waiters.pop(msg_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _drain_shell(self) -> None:
        # Replies are not needed (iopub carries everything), but must not pile up.
        while True:
            try:
                await self._client.get_shell_msg()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.1)

    # -- execution ---------------------------------------------------------------------

    async def _work(self) -> None:
        await self._wait_until_connected()
        while True:
            request = await self.queue.get()
            try:
                await self._run(request)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution of cell %s failed", request.cell_id)
                self._end(request, "ServerError", "ydoc-outputs could not run this cell")

    async def _wait_until_connected(self) -> None:
        """Wait until iopub delivers: zmq drops what is published before it subscribes."""
        while not self._ready.is_set():
            self._client.kernel_info()
            try:
                await asyncio.wait_for(self._ready.wait(), 1.0)
            except asyncio.TimeoutError:
                continue

    async def _run(self, request: ExecutionRequest) -> None:
        room = self._rooms.notebook_room(request.document_id)
        if room is None:  # cannot happen while held, but never hang on it
            return
        room.reducer.start_cell(request.cell_id)
        room.writer.apply(room.reducer.flush())
        msg_id = self._client.execute(request.code, allow_stdin=False, stop_on_error=True)
        self._router.add(msg_id, Route(request.document_id, request.cell_id))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = waiter
        try:
            problem = await self._watch(waiter)
        finally:
            self._waiters.pop(msg_id, None)
        if problem is not None:
            self._end(request, *problem)
            self._cancel_queued("the kernel stopped before this cell ran")
            return
        self._rooms.release(room)
        if msg_id in self._errored:
            self._errored.discard(msg_id)
            # Like stop_on_error in the classic frontend: an error aborts the queued cells.
            self._cancel_queued(None)

    async def _watch(self, waiter: asyncio.Future[None]) -> tuple[str, str] | None:
        """Wait for the cell to finish; report a kernel that died or restarted meanwhile."""
        kernel = self._kernel
        provisioner = getattr(kernel, "provisioner", None)
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=WATCHDOG_INTERVAL)
            if done:
                return None
            if self.kernel_id not in self._kernels:
                return ("KernelShutdown", "the kernel was shut down while this cell ran")
            if getattr(self._kernel, "provisioner", None) is not provisioner:
                return ("KernelRestarted", "the kernel was restarted while this cell ran")
            if not await ensure_async(self._kernel.is_alive()):
                return ("KernelDied", "the kernel died while this cell ran")

    def _cancel_queued(self, reason: str | None) -> None:
        for request in self.queue.take_all():
            if reason is None:
                self._end(request, None, None)
            else:
                self._end(request, "Cancelled", reason)

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
