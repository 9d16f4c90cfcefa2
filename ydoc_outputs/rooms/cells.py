"""Where each cell of a notebook is, and which code cells a page marked running.

Reading a cell through pycrdt costs tens of microseconds, so a walk over a notebook's
cells costs about 2 ms per 50 cells: too much for each execute request and each pick of
the next cell to run. The index is rebuilt only when the ``cells`` array itself changed
(cells inserted, deleted or moved, by anyone: a shallow observer, which the server's
output writes inside cells do not wake) or after a client changed a cell beyond its
text (the room's update guard tells, see :meth:`CellIndex.client_changed`): that is how
a page's mark of a cell it is about to run arrives.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Array, Map

from ..kernels.queue import DocumentView

__all__ = ["CellIndex"]


class CellIndex:
    """An index of a notebook's ``cells`` array, rebuilt lazily when it may be stale."""

    def __init__(self, ycells: Array[Any]) -> None:
        self._ycells = ycells
        # pycrdt unsubscribes when the subscription is garbage collected: keep it.
        self._subscription = ycells.observe(self._cells_moved)
        self._stale = True
        #: Cell id -> index in ``cells`` (the first cell of a duplicated id).
        self._index: dict[str, int] = {}
        #: Code cell id -> index among the code cells.
        self._positions: dict[str, int] = {}
        #: Code cells found running at the last rebuild and not seen idle since.
        self._marked: set[str] = set()

    def _cells_moved(self, _event: Any) -> None:
        self._stale = True

    def client_changed(self) -> None:
        """A client's update changed a cell beyond its text (e.g. marked it running)."""
        self._stale = True

    def _rebuild(self) -> None:
        index: dict[str, int] = {}
        positions: dict[str, int] = {}
        marked: set[str] = set()
        code = 0
        with self._ycells.doc.transaction():
            for i, ycell in enumerate(self._ycells):
                if not isinstance(ycell, Map):
                    continue
                cell_id = ycell.get("id")
                is_code = ycell.get("cell_type") == "code"
                if isinstance(cell_id, str) and cell_id not in index:
                    index[cell_id] = i
                    if is_code:
                        positions[cell_id] = code
                        if ycell.get("execution_state") == "running":
                            marked.add(cell_id)
                code += is_code
        self._index, self._positions, self._marked = index, positions, marked
        self._stale = False

    def _cell(self, cell_id: str) -> Map[Any] | None:
        """The cell's map, through the index (checked: it may have moved)."""
        i = self._index.get(cell_id)
        if i is None or i >= len(self._ycells):
            return None
        ycell = self._ycells[i]
        return ycell if isinstance(ycell, Map) and ycell.get("id") == cell_id else None

    def cell(self, cell_id: str) -> Map[Any] | None:
        """The cell with this id (the first, if the id is duplicated), or None."""
        found = self.find(cell_id)
        return found[0] if found is not None else None

    def find(self, cell_id: str) -> tuple[Map[Any], int] | None:
        """The cell with this id and its index among the code cells (-1 for other
        cells), or None if there is none."""
        if self._stale:
            self._rebuild()
        ycell = self._cell(cell_id)
        if ycell is None and not self._stale:
            self._rebuild()  # moved by a change that told nobody; look once more
            ycell = self._cell(cell_id)
        if ycell is None:
            return None
        return ycell, self._positions.get(cell_id, -1)

    def view(self, skip: set[str] | frozenset[str] = frozenset()) -> DocumentView:
        """The code cells' order and the ones marked running; the marks of the cells in
        ``skip`` (the ones the server runs or queued) are left out. Each mark is read
        again only when the queue asks about it (the server sets cells idle as they end:
        only those can have lost a mark since the last rebuild)."""
        if self._stale:
            self._rebuild()
            return DocumentView(self._positions, self._marked - skip)
        return DocumentView(self._positions, self._marked - skip, self._still_marked)

    def _still_marked(self, cell_id: str) -> bool:
        if cell_id not in self._marked:
            return False
        ycell = self._cell(cell_id)
        if ycell is None:
            self._rebuild()  # moved by a change that told nobody
            return cell_id in self._marked
        if ycell.get("execution_state") != "running":
            self._marked.discard(cell_id)
            return False
        return True
