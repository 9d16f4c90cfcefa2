"""Follows a notebook's outputs in a synced Y document and hands them to the printer.

The server changes outputs in a few ways (writer.py): it appends text to the last stream
output, rewrites that stream's last line for ``\\r``, appends outputs, clears them, and
rewrites a tail of outputs (deleted, then appended again as copies) to replace a display
or to truncate a cell. The mirror keeps one record per output, moved along with the
outputs array's changes; outputs deleted and appended again in one change are matched by
their text, so a copy is not printed a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, Map

from .render import OutputRecord, TerminalPrinter, output_text, strip_ansi

__all__ = ["CellScope", "NotebookMirror"]

#: Which cells to follow: given a code cell's id and index among all cells.
CellScope = Callable[[str, int], bool]


@dataclass(eq=False)
class _CellView:
    cell_id: str
    label: str
    records: list[OutputRecord] = field(default_factory=list)
    state: str | None = None


class NotebookMirror:
    """Prints the outputs of the followed code cells of a YNotebook's ``cells`` array."""

    def __init__(
        self,
        ycells: Array[Any],
        printer: TerminalPrinter,
        scope: CellScope,
    ) -> None:
        self._ycells = ycells
        self._printer = printer
        self._scope = scope
        self._views: dict[str, _CellView] = {}
        self._subscription: Any = None

    def start(self) -> None:
        """Print the outputs as they are now, then follow their changes."""
        self._reindex()
        self._subscription = self._ycells.observe_deep(self._changed)

    def stop(self) -> None:
        if self._subscription is not None:
            self._ycells.unobserve(self._subscription)
            self._subscription = None

    def finish(self) -> None:
        """Print the unfinished lines of every output (the program ends)."""
        for view in self._views.values():
            for record in view.records:
                self._printer.finish(record)

    def running(self) -> set[str]:
        """The followed cells marked running (``[*]``: running or queued)."""
        return {cid for cid, view in self._views.items() if view.state == "running"}

    # -- reading the document ----------------------------------------------------------

    def _text(self, output: Any) -> str:
        value = output.to_py() if isinstance(output, Map) else None
        text = output_text(value) if isinstance(value, dict) else ""
        return text if self._printer.tty else strip_ansi(text)

    def _reindex(self) -> None:
        """Find the followed cells again (cells were added, deleted or moved)."""
        seen: set[str] = set()
        for index, ycell in enumerate(self._ycells):
            if not isinstance(ycell, Map) or ycell.get("cell_type") != "code":
                continue
            cell_id = ycell.get("id")
            if not isinstance(cell_id, str) or cell_id in seen:
                continue
            seen.add(cell_id)
            view = self._views.get(cell_id)
            if view is None:
                if not self._scope(cell_id, index):
                    continue
                view = self._views[cell_id] = _CellView(cell_id, f"cell {index}")
            self._resync(view, ycell)
            self._set_state(view, ycell.get("execution_state"))
        for cell_id in [cid for cid in self._views if cid not in seen]:
            for record in self._views.pop(cell_id).records:
                self._printer.finish(record)

    def _changed(self, events: Iterable[Any]) -> None:
        by_cell: dict[int, list[Any]] = {}
        for event in events:
            path = event.path
            if not path:
                # Cells inserted, deleted or moved (a move is a delete and an insert of
                # a copy): look at every followed cell again.
                self._reindex()
                by_cell.clear()
                break
            if isinstance(path[0], int):
                by_cell.setdefault(path[0], []).append(event)
        # One transaction can change several cells: the server writes a pump batch at
        # once, which may end one cell and run the next ones. Events come in no cell
        # order, so print the cells in the notebook's order (a run's order).
        for index, cell_events in sorted(by_cell.items()):
            ycell = self._ycells[index] if index < len(self._ycells) else None
            if not isinstance(ycell, Map):
                continue
            view = self._views.get(str(ycell.get("id")))
            if view is not None:
                self._cell_changed(view, ycell, cell_events)

    def _cell_changed(self, view: _CellView, ycell: Map[Any], events: list[Any]) -> None:
        replaced = False
        delta: list[dict[str, Any]] | None = None
        edited: set[int] = set()
        for event in events:
            path = event.path[1:]
            if not path:
                replaced = replaced or "outputs" in event.keys
            elif path[0] == "outputs":
                if len(path) == 1:
                    delta = event.delta
                elif isinstance(path[1], int):
                    edited.add(path[1])
        outputs = ycell.get("outputs")
        if replaced or not isinstance(outputs, Array):
            self._resync(view, ycell)
        else:
            self._apply_delta(view, outputs, delta or [], edited)
        self._set_state(view, ycell.get("execution_state"))

    def _set_state(self, view: _CellView, state: Any) -> None:
        view.state = state if isinstance(state, str) else None
        if view.state != "running":
            for record in view.records:
                self._printer.finish(record)

    # -- following the outputs array ---------------------------------------------------

    def _resync(self, view: _CellView, ycell: Map[Any]) -> None:
        """Match the cell's outputs again as a whole (its array was replaced)."""
        outputs = ycell.get("outputs")
        if not isinstance(outputs, Array):
            outputs = Array()
        self._apply_delta(view, outputs, [{"delete": len(view.records)}, {"insert": list(outputs)}])

    def _apply_delta(
        self,
        view: _CellView,
        outputs: Array[Any],
        delta: list[dict[str, Any]],
        edited: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """Move the records along with one change of the outputs array (``delta``, and
        the outputs whose text changed, by their index now), then print in the order of
        the outputs: what was added to an output comes before the outputs after it."""
        old = view.records
        records: list[OutputRecord] = []
        steps: list[_Step] = []
        deleted: list[OutputRecord] = []
        inserted: list[str] = []

        def keep(record: OutputRecord) -> None:
            if len(records) in edited:
                steps.append(_Step(record, self._text(outputs[len(records)])))
            records.append(record)

        i = 0
        for change in delta:
            if "retain" in change:
                self._match(view, records, steps, deleted, inserted)
                deleted, inserted = [], []
                n = int(change["retain"])
                for record in old[i : i + n]:
                    keep(record)
                i += n
            elif "delete" in change:
                n = int(change["delete"])
                deleted.extend(old[i : i + n])
                i += n
            elif "insert" in change:
                inserted.extend(self._text(item) for item in change["insert"])
        self._match(view, records, steps, deleted, inserted)
        for record in old[i:]:
            keep(record)
        view.records = records
        printer = self._printer
        for step in steps:
            if step.text is None:
                printer.finish(step.record)
                continue
            if step.new and step.before is not None:
                printer.finish(step.before)  # a new output: the one before it is over
            printer.update(step.record, step.text)

    def _match(
        self,
        view: _CellView,
        records: list[OutputRecord],
        steps: list[_Step],
        deleted: list[OutputRecord],
        texts: list[str],
    ) -> None:
        """Add to ``records`` those of ``texts``, the outputs that replaced ``deleted``:
        an output whose text is a deleted one's (a copy the writer appended again) keeps
        its record, so prints nothing again; the others are new."""
        if not deleted and not texts:
            return
        # In order: each text takes the first deleted output at or after the last one
        # taken that it continues; those skipped over are gone. (A rewrite keeps the
        # outputs' order, and drops some: from the middle, truncating, or all, clearing.)
        taken = 0
        for text in texts:
            found = next(
                (k for k in range(taken, len(deleted)) if _continues(text, deleted[k])), None
            )
            if found is None:
                before = records[-1] if records else None
                record = OutputRecord(label=view.label)
                steps.append(_Step(record, text, new=True, before=before))
            else:
                steps.extend(_Step(gone) for gone in deleted[taken:found])
                record = deleted[found]
                steps.append(_Step(record, text))
                taken = found + 1
            records.append(record)
        steps.extend(_Step(gone) for gone in deleted[taken:])


def _continues(text: str, record: OutputRecord) -> bool:
    """Whether an output reading ``text`` can be the output of ``record``, copied: the
    same text, or more (its last line may have been rewritten). An empty output (between
    two segments of a stream) only stands for another empty one."""
    if not record.committed:
        return text == record.text
    return text.startswith(record.text[: record.committed])


@dataclass(eq=False)
class _Step:
    """Print an output's text now (``text``), or end it (``text`` None)."""

    record: OutputRecord
    text: str | None = None
    #: A new output, after ``before``.
    new: bool = False
    before: OutputRecord | None = None
