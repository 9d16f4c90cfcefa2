"""Server-side execution: one runner per kernel, created on first use.

A runner whose kernel is shut down tells the service, which forgets and stops it: no
client, task or poll outlives its kernel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..heap import HeapTrimmer
from ..outputs.routing import ParentRouter
from ..rooms.manager import RoomManager
from ..rooms.room import NotebookRoom
from .faults import Fault
from .queue import ExecutionRequest
from .runner import KernelRunner, unmark

__all__ = ["ExecutionService"]

log = logging.getLogger(__name__)


class ExecutionService:
    """Accepts cells to execute and hands them to the runner of their kernel."""

    def __init__(
        self,
        kernel_manager: Any,
        rooms: RoomManager,
        order_grace: float,
        batch_interval: float = 0.0,
        flood_trim_threshold: int | None = None,
    ) -> None:
        self._kernels = kernel_manager
        self._rooms = rooms
        self._order_grace = order_grace
        #: Per document, the cells taken to run and not ended yet (on any kernel), with
        #: how many requests of each.
        self._active: dict[str, dict[str, int]] = {}
        #: Per document, when its last execute request arrived and when a client last
        #: changed its cells (monotonic), and the pending check for marks left behind.
        self._last_request: dict[str, float] = {}
        self._last_marks: dict[str, float] = {}
        self._sweeps: dict[str, asyncio.TimerHandle] = {}
        self._batch_interval = batch_interval
        self._trimmer = HeapTrimmer(flood_trim_threshold=flood_trim_threshold)
        self.router = ParentRouter()
        self._runners: dict[str, KernelRunner] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def kernel_ids(self) -> frozenset[str]:
        """The kernels that have a runner now."""
        return frozenset(self._runners)

    def runner(self, kernel_id: str) -> KernelRunner | None:
        """The runner of ``kernel_id``, if it has one."""
        return self._runners.get(kernel_id)

    async def submit(
        self,
        kernel_id: str,
        room: NotebookRoom,
        cell_id: str,
        code: str,
        position: int,
        *,
        sent: int | None = None,
        sender: str | None = None,
    ) -> ExecutionRequest:
        """Queue ``cell_id`` of ``room`` on ``kernel_id``; returns at once.

        ``sent``: when the page sent the request, in its clock's milliseconds; ``sender``:
        the user (see queue.py).
        """
        runner = self._runners.get(kernel_id)
        if runner is None:
            runner = KernelRunner(
                kernel_id,
                self._kernels,
                self._rooms,
                self.router,
                order_grace=self._order_grace,
                active=self.active_cells,
                on_end=self._ended,
                on_gone=self._runner_gone,
                batch_interval=self._batch_interval,
                trimmer=self._trimmer,
            )
            await runner.start()
            self._runners[kernel_id] = runner
        request = ExecutionRequest(room.name, cell_id, code, position, sent, sender)
        self._last_request[room.name] = request.arrived
        cells = self._active.setdefault(room.name, {})
        cells[cell_id] = cells.get(cell_id, 0) + 1
        runner.submit(request, room)
        return request

    def cells_changed(self, room: NotebookRoom) -> None:
        """A client changed cells of ``room`` beyond their text: if that marked cells to
        run, check once the grace is over that their requests came."""
        name = room.name
        self._last_marks[name] = time.monotonic()
        if name not in self._sweeps:
            loop = asyncio.get_running_loop()
            self._sweeps[name] = loop.call_later(self._order_grace, self._sweep, name)

    def _sweep(self, name: str) -> None:
        """Set idle the cells a page marked to run whose request did not come while
        requests of their document kept arriving (the page went away in between)."""
        del self._sweeps[name]
        room = self._rooms.notebook_room(name)
        if room is None:
            self._last_marks.pop(name, None)
            return
        quiet_since = max(self._last_marks.get(name, 0.0), self._last_request.get(name, 0.0))
        left = quiet_since + self._order_grace - time.monotonic()
        if left > 0:
            self._sweeps[name] = asyncio.get_running_loop().call_later(left, self._sweep, name)
            return
        self._last_marks.pop(name, None)
        active = self.active_cells(name)
        unmark(room, room.cells.view(skip=active).marked - active)

    def active_cells(self, document_id: str) -> set[str]:
        """The cells of a document taken to run (queued or running) and not ended."""
        return set(self._active.get(document_id, ()))

    def _ended(self, request: ExecutionRequest) -> None:
        cells = self._active.get(request.document_id)
        if cells is None or request.cell_id not in cells:
            return
        cells[request.cell_id] -= 1
        if not cells[request.cell_id]:
            del cells[request.cell_id]
            if not cells:
                del self._active[request.document_id]

    def _runner_gone(self, runner: KernelRunner) -> None:
        # Called from the runner's own task, which stopping cancels: stop it from another.
        if self._runners.get(runner.kernel_id) is runner:
            del self._runners[runner.kernel_id]
        task = asyncio.ensure_future(runner.stop(Fault.SHUT_DOWN))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def forget_kernel(self, kernel_id: str) -> None:
        """Stop the runner of a kernel that is gone."""
        runner = self._runners.pop(kernel_id, None)
        if runner is not None:
            await runner.stop(Fault.SHUT_DOWN)

    async def stop(self) -> None:
        for sweep in self._sweeps.values():
            sweep.cancel()
        self._sweeps.clear()
        self._trimmer.stop()
        runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            await runner.stop()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
