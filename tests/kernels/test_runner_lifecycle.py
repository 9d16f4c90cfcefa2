"""The kernel runner in process, with a real kernel manager and ipykernel, and no server.

What the server tests cannot see from outside: a runner whose kernel is shut down is
forgotten by the service and leaves no task, client or poll behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from jupyter_ydoc import YNotebook

from ydoc_outputs.kernels.service import ExecutionService
from ydoc_outputs.outputs.reducer import OutputReducer
from ydoc_outputs.rooms.cells import CellIndex
from ydoc_outputs.ydoc.writer import OutputWriter

ROOM = "json:notebook:lifecycle"
#: Long enough for a kernel printing flushed lines to overrun zmq's default queues.
BLOCKED_SECONDS = 6
LOOP = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"


class Room:
    """The part of a NotebookRoom the runner uses."""

    def __init__(self, sources: list[str]) -> None:
        self.name = ROOM
        self.ynotebook = YNotebook()
        self.ynotebook.set(
            {
                "cells": [
                    {"cell_type": "code", "id": f"c{i}", "source": s, "metadata": {},
                     "outputs": [], "execution_count": None}
                    for i, s in enumerate(sources)
                ],
                "metadata": {},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )  # fmt: skip
        self.reducer = OutputReducer()
        self.writer = OutputWriter(self.ynotebook)
        self.cells = CellIndex(self.ynotebook.ycells)
        self.busy = 0
        self.changed = asyncio.Event()
        self.ynotebook.ydoc.observe(lambda _e: self.changed.set())

    def cell(self, cell_id: str) -> dict[str, Any]:
        for ycell in self.ynotebook.ycells:
            if ycell.get("id") == cell_id:
                cell: dict[str, Any] = ycell.to_py()
                return cell
        raise KeyError(cell_id)

    def text(self, cell_id: str) -> str:
        return "".join(o.get("text", "") for o in self.cell(cell_id)["outputs"])

    async def wait_for(self, predicate: Any, timeout: float = 30) -> None:
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


class Rooms:
    """The part of the RoomManager the runner uses: one room, held and released."""

    def __init__(self, room: Room) -> None:
        self.room = room

    def notebook_room(self, name: str) -> Room | None:
        return self.room if name == self.room.name else None

    async def get_notebook_room(self, name: str) -> Room:
        assert name == self.room.name
        return self.room

    def hold(self, room: Room) -> None:
        room.busy += 1

    def release(self, room: Room) -> None:
        room.busy -= 1

    def maybe_clean_up(self, room: Room) -> None:
        pass


@pytest.fixture
async def kernels(tmp_path: Path) -> AsyncIterator[AsyncMappingKernelManager]:
    # Connection files go to the test's directory, not to the working directory.
    manager = AsyncMappingKernelManager(connection_dir=str(tmp_path))
    yield manager
    await manager.shutdown_all(now=True)


async def test_a_shut_down_kernel_forgets_its_runner(kernels: AsyncMappingKernelManager):
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    room = Room([LOOP, "print('queued')"])
    service = ExecutionService(kernels, Rooms(room), 0.5)  # type: ignore[arg-type]
    await service.submit(kernel_id, room, "c0", LOOP, 0)  # type: ignore[arg-type]
    await service.submit(kernel_id, room, "c1", "print('queued')", 1)  # type: ignore[arg-type]
    runner = service.runner(kernel_id)
    assert runner is not None
    await room.wait_for(lambda: room.text("c0").startswith("0\n"))
    # Its own session id: not the kernel manager's, whose msg_ids would collide.
    kernel_session = kernels.get_kernel(kernel_id).session.session
    assert runner._client.session.session != kernel_session

    await kernels.shutdown_kernel(kernel_id)
    await asyncio.wait_for(runner.finished.wait(), 5)
    assert kernel_id not in service.kernel_ids
    assert all(task.done() for task in runner.tasks)
    assert not runner._client.channels_running

    [*_, error] = room.cell("c0")["outputs"]
    assert (error["output_type"], error["ename"]) == ("error", "KernelShutdown")
    assert room.cell("c0")["execution_state"] == "idle"
    assert room.cell("c1")["outputs"] == []  # queued, never ran: left as stock leaves it
    assert room.cell("c1")["execution_count"] is None
    assert room.cell("c1")["execution_state"] == "idle"
    assert room.busy == 0
    await service.stop()


async def test_stopping_the_service_ends_running_and_queued_cells(
    kernels: AsyncMappingKernelManager,
):
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    room = Room([LOOP, "print('queued')"])
    service = ExecutionService(kernels, Rooms(room), 0.5)  # type: ignore[arg-type]
    await service.submit(kernel_id, room, "c0", LOOP, 0)  # type: ignore[arg-type]
    await service.submit(kernel_id, room, "c1", "print('queued')", 1)  # type: ignore[arg-type]
    runner = service.runner(kernel_id)
    assert runner is not None
    await room.wait_for(lambda: room.text("c0").startswith("0\n"))

    await service.stop()
    assert runner.finished.is_set()
    assert all(task.done() for task in runner.tasks)
    assert room.cell("c0")["outputs"][-1]["ename"] == "ServerStopped"
    assert room.cell("c1")["outputs"] == []
    assert room.cell("c0")["execution_state"] == room.cell("c1")["execution_state"] == "idle"
    assert room.busy == 0


async def test_no_output_is_lost_while_the_event_loop_is_blocked(
    kernels: AsyncMappingKernelManager,
):
    """A kernel printing flushed lines while the server's event loop does something else
    for seconds (opening a huge notebook): every line still reaches the document."""
    lines = 40_000
    code = f"for i in range({lines}):\n    print(i, flush=True)"
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    room = Room([code])
    service = ExecutionService(kernels, Rooms(room), 0.5)  # type: ignore[arg-type]
    await service.submit(kernel_id, room, "c0", code, 0)  # type: ignore[arg-type]
    await room.wait_for(lambda: room.text("c0").startswith("0\n"))
    time.sleep(BLOCKED_SECONDS)  # the whole event loop: no iopub is read meanwhile
    await room.wait_for(lambda: room.cell("c0")["execution_state"] == "idle", timeout=120)
    assert room.text("c0") == "".join(f"{i}\n" for i in range(lines))
    await service.stop()
