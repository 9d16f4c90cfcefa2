"""The execution queue of one kernel: one cell at a time, Run All in document order.

The stock frontend fires Run All's requests at once and they may arrive out of
order, so requests of one document that arrive within ``window`` seconds of the
first are taken in the order of their cells in the document. A request for a
document's first code cell starts at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ExecutionQueue", "ExecutionRequest"]


@dataclass(eq=False)
class ExecutionRequest:
    """One cell to execute."""

    document_id: str
    cell_id: str
    code: str
    #: The cell's index among the document's code cells when the request arrived.
    position: int
    arrived: float = field(default_factory=time.monotonic)


class ExecutionQueue:
    """FIFO of execution requests, reordered within an arrival window."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._items: list[ExecutionRequest] = []
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, request: ExecutionRequest) -> None:
        self._items.append(request)
        self._changed.set()

    def take_all(self) -> list[ExecutionRequest]:
        """Remove and return every queued request."""
        items, self._items = self._items, []
        return items

    def next_ready(self) -> ExecutionRequest | None:
        """Pop the request to run now, or None if the queue is empty."""
        if not self._items:
            return None
        head = self._items[0]
        group = [
            r
            for r in self._items
            if r.document_id == head.document_id and r.arrived - head.arrived <= self._window
        ]
        chosen = min(group, key=lambda r: r.position)
        self._items.remove(chosen)
        return chosen

    async def get(self) -> ExecutionRequest:
        """Wait for the next request, giving its concurrent siblings time to arrive."""
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        head = self._items[0]
        # The first code cell of its document: no sibling can have to run before it.
        wait = head.arrived + self._window - self._clock() if head.position else 0
        if wait > 0:
            await asyncio.sleep(wait)
        request = self.next_ready()
        if request is None:  # taken meanwhile (cancelled)
            return await self.get()
        return request
