"""Server-side execution: one runner per kernel, created on first use."""

from __future__ import annotations

import logging
from typing import Any

from ..outputs.routing import ParentRouter
from ..rooms.manager import RoomManager
from ..rooms.room import NotebookRoom
from .queue import ExecutionRequest
from .runner import KernelRunner

__all__ = ["ExecutionService"]

log = logging.getLogger(__name__)


class ExecutionService:
    """Accepts cells to execute and hands them to the runner of their kernel."""

    def __init__(self, kernel_manager: Any, rooms: RoomManager, order_window: float) -> None:
        self._kernels = kernel_manager
        self._rooms = rooms
        self._order_window = order_window
        self.router = ParentRouter()
        self._runners: dict[str, KernelRunner] = {}

    async def submit(
        self, kernel_id: str, room: NotebookRoom, cell_id: str, code: str, position: int
    ) -> ExecutionRequest:
        """Queue ``cell_id`` of ``room`` on ``kernel_id``; returns at once."""
        runner = self._runners.get(kernel_id)
        if runner is None:
            runner = KernelRunner(
                kernel_id, self._kernels, self._rooms, self.router, self._order_window
            )
            await runner.start()
            self._runners[kernel_id] = runner
        request = ExecutionRequest(room.name, cell_id, code, position)
        runner.submit(request, room)
        return request

    async def forget_kernel(self, kernel_id: str) -> None:
        """Stop the runner of a kernel that is gone."""
        runner = self._runners.pop(kernel_id, None)
        if runner is not None:
            await runner.stop()

    async def stop(self) -> None:
        runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            await runner.stop()
