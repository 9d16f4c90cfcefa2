"""The execution queue of one kernel: one cell at a time, Run All in document order.

Nothing here waits on a guess about timing. The order comes from evidence:

* **What the page shows as scheduled.** A page marks a cell running
  (``execution_state: "running"``, the ``[*]`` prompt) in the shared document right
  before it posts the cell's execute request, as stock JupyterLab's ``CodeCell.execute``
  does (ydoc-outputs' page extension does it on ``NotebookActions.executionScheduled``).
  Run All marks and posts its cells in one synchronous loop, in document order, so the
  marks of the cells still to come reach the server over the room websocket, in order,
  before or with the first posts. A marked cell whose request has not arrived is
  *expected*: a queued cell after it in the document waits for it; one before it does
  not. A lone Shift+Enter marks only its own cell, and runs at once.
* **When the page sent each request.** JupyterLab's ``ServerConnection`` puts the
  page's clock in milliseconds in each request's query (``?1733480000123``, its
  ``cache: "no-store"``). Queued requests of one document from one user run in the
  order the page sent them; requests sent in the same millisecond, by the loop of one
  Run All, in document order. So a user who queues cell 9 and then cell 3 while cell 5
  runs gets 9 then 3, as with stock JupyterLab's kernel websocket.

Requests without a send time (API clients) run in document order among those queued.
An expected cell is waited for only while requests of its document keep arriving: at
most ``grace`` seconds after the last one. Past that its mark is stale (the page went
away between the mark and the post) and the owner is told, to set it idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DocumentView", "ExecutionQueue", "ExecutionRequest", "sent_time"]

#: Latest page send time accepted, in milliseconds since the epoch (year 10000).
_MAX_SENT_MS = 253402300800000


@dataclass(eq=False)
class ExecutionRequest:
    """One cell to execute."""

    document_id: str
    cell_id: str
    code: str
    #: The cell's index among the document's code cells when the request arrived; the
    #: order uses the index when it decides, this only if the cell is gone by then.
    position: int
    #: When the page sent it, in its own clock's milliseconds (None: not told).
    sent: int | None = None
    #: Who sent it: send times are compared only between requests of one user.
    sender: str | None = None
    arrived: float = field(default_factory=time.monotonic)


class DocumentView:
    """What a document shows now about its code cells.

    Args:
        positions: Code cell id -> index among the code cells.
        marked: The code cells marked running (``[*]``), or, with ``still_marked``, the
            ones that were when last looked at.
        still_marked: Whether one of those cells is still marked now (None: all are).
            Checked only for the cells a question is about: a Run All of n cells asks
            n times, and reading each of its marks each time cost O(n²).
    """

    def __init__(
        self,
        positions: dict[str, int],
        marked: set[str],
        still_marked: Callable[[str], bool] | None = None,
    ) -> None:
        self.positions = positions
        self._marked = marked
        self._still_marked = still_marked

    def _holds(self, cell_id: str) -> bool:
        return self._still_marked is None or self._still_marked(cell_id)

    @property
    def marked(self) -> set[str]:
        """The code cells marked running now."""
        return {c for c in self._marked if self._holds(c)}

    def marked_before(self, position: int, skip: set[str]) -> set[str]:
        """The code cells before ``position`` marked running now, except ``skip``."""
        positions = self.positions
        return {
            c
            for c in self._marked
            if c not in skip and c in positions and positions[c] < position and self._holds(c)
        }


def sent_time(query: str) -> int | None:
    """The page's send time in a request's query string: JupyterLab appends its clock in
    milliseconds, alone or after ``&``, to requests that must not be cached."""
    last = query.rsplit("&", 1)[-1]
    if last.isascii() and last.isdigit() and len(last) <= 15:
        value = int(last)
        return value if 0 < value <= _MAX_SENT_MS else None
    return None


class ExecutionQueue:
    """The requests waiting for one kernel, taken in the order the evidence gives."""

    def __init__(
        self,
        view: Callable[[str, set[str]], DocumentView | None],
        active: Callable[[str], set[str]],
        *,
        grace: float,
        on_stale: Callable[[str, set[str]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        view: What a document shows now (None: the document is gone); its marks may
            leave out the cells of the given set, which the queue ignores anyway.
        active: The cells of a document the server has taken to run (queued or running,
            on any kernel): their marks are the server's own.
        grace: Seconds after a document's last request during which its expected cells
            are waited for.
        on_stale: Told of a document's expected cells once their wait is over.
        """
        self._view = view
        self._active = active
        self._grace = grace
        self._on_stale = on_stale
        self._clock = clock
        self._items: list[ExecutionRequest] = []
        self._last_arrival: dict[str, float] = {}
        #: Per document, the expected cells of a run that an error ended.
        self._aborted: dict[str, set[str]] = {}
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, request: ExecutionRequest) -> bool:
        """Queue a request; False if it belongs to a run that an error ended (see
        :meth:`abort_expected`): it must not run."""
        document_id = request.document_id
        last = self._last_arrival.get(document_id)
        self._last_arrival[document_id] = request.arrived
        aborted = self._aborted.get(document_id)
        if aborted is not None:
            if last is None or request.arrived - last > self._grace:
                del self._aborted[document_id]  # that run's requests stopped coming
            elif request.cell_id in aborted:
                aborted.discard(request.cell_id)
                return False
        self._items.append(request)
        self._changed.set()
        return True

    def abort_expected(self, document_id: str) -> set[str]:
        """An error ended the run of a document: like the kernel's ``stop_on_error``,
        which aborts what a page had sent after the failed cell, the requests of its
        expected cells are refused when they arrive, while its requests keep arriving
        (:meth:`put` returns False). Returns those cells."""
        expected = self.expected(document_id)
        if expected:
            self._aborted[document_id] = set(expected)
        else:
            self._aborted.pop(document_id, None)
        return expected

    def put_back(self, request: ExecutionRequest) -> None:
        """Return a request that was taken but not run (it keeps its place)."""
        self._items.insert(0, request)
        self._changed.set()

    def take_all(self) -> list[ExecutionRequest]:
        """Remove and return every queued request."""
        items, self._items = self._items, []
        return items

    def expected(self, document_id: str) -> set[str]:
        """The cells of a document marked running whose request has not arrived."""
        active = self._active(document_id)
        view = self._view(document_id, active)
        return view.marked - active if view is not None else set()

    def next_ready(self) -> tuple[ExecutionRequest | None, float | None]:
        """The request to run now, removed from the queue; else None and how long to
        wait at most before deciding again (None: until a request arrives)."""
        if not self._items:
            return None, None
        document_id = self._items[0].document_id
        group = [r for r in self._items if r.document_id == document_id]
        active = self._active(document_id)
        view = self._view(document_id, active)
        positions = view.positions if view is not None else {}

        def position(r: ExecutionRequest) -> int:
            return positions.get(r.cell_id, r.position)

        senders = {r.sender for r in group}
        if len(senders) == 1 and all(r.sent is not None for r in group):
            chosen = min(group, key=lambda r: (r.sent, position(r)))
        else:
            chosen = min(group, key=position)
        before = view.marked_before(position(chosen), active) if view is not None else set()
        if before:
            wait = self._last_arrival[document_id] + self._grace - self._clock()
            if wait > 0:
                return None, wait
            if self._on_stale is not None:
                self._on_stale(document_id, before)
        self._items.remove(chosen)
        return chosen, None

    async def get(self) -> ExecutionRequest:
        """Wait for the next request to run."""
        while True:
            self._changed.clear()
            request, wait = self.next_ready()
            if request is not None:
                return request
            # asyncio's TimeoutError is the builtin only from Python 3.11.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)
