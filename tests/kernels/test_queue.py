"""The execution queue: Run All's requests in document order, first cells at once."""

from __future__ import annotations

import asyncio
import time

from ydoc_outputs.kernels.queue import ExecutionQueue, ExecutionRequest

WINDOW = 0.5


def request(position: int, document: str = "d") -> ExecutionRequest:
    return ExecutionRequest(document, f"cell-{position}", "pass", position)


async def test_requests_of_a_burst_run_in_document_order() -> None:
    queue = ExecutionQueue(WINDOW)
    for position in (3, 1, 2):
        queue.put(request(position))
    order = [(await queue.get()).position for _ in range(3)]
    assert order == [1, 2, 3]


async def test_a_later_cell_waits_for_earlier_siblings() -> None:
    queue = ExecutionQueue(WINDOW)
    queue.put(request(2))
    start = time.monotonic()
    getting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0.05)
    queue.put(request(0))  # arrives late, within the window: runs first
    assert (await getting).position == 0
    assert time.monotonic() - start >= WINDOW * 0.9
    assert (await queue.get()).position == 2


async def test_the_first_code_cell_starts_at_once() -> None:
    queue = ExecutionQueue(WINDOW)
    queue.put(request(0))
    start = time.monotonic()
    assert (await queue.get()).position == 0
    assert time.monotonic() - start < WINDOW / 2
