"""Turn the iopub messages of one notebook into batches of output operations.

Pure nbformat semantics (stream coalescing, ``\\r``/``\\b``, clear_output, display ids);
the writer applies each flushed batch to the Y document in one transaction.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from .budget import CellBudget, output_chars
from .mapping import display_id_of, output_from_message
from .ops import (
    AppendOutput,
    ClearOutputs,
    DropOutputs,
    KernelMessage,
    Op,
    OutputDict,
    ReplaceOutput,
    SetExecutionCount,
    SetExecutionState,
    SetExecutionTiming,
    SpillText,
    TruncateOutputs,
    TrustCell,
)
from .stream import StreamOutput
from .text import LineBuffer

__all__ = ["OutputLimits", "OutputReducer", "continuation"]


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """Size limits on what the reducer writes.

    Attributes:
        stream_segment_chars: Once a stream output holds this many characters and ends
            with a newline, the stream continues in a new output, so that appending to
            a ``Text`` stays cheap. A line is never split across outputs.
        cell_output_chars: The most output a cell keeps in the document, counted in
            characters (stream text, and the strings of rich outputs). Past it, the cell
            keeps its first and its last ``cell_output_chars / 2``, with a truncation
            marker between them; the outputs dropped in between go to a spill file.
            0 keeps everything.
        line_chars: An unfinished line longer than this is cut: what it holds so far is
            treated as a completed line, so a line without end stays bounded too.
    """

    stream_segment_chars: int = 65536
    cell_output_chars: int = 10_000_000
    line_chars: int = 1_048_576

    def __post_init__(self) -> None:
        if self.stream_segment_chars < 1:
            raise ValueError("stream_segment_chars must be at least 1")
        if self.line_chars < 1:
            raise ValueError("line_chars must be at least 1")
        if self.cell_output_chars < 0:
            raise ValueError("cell_output_chars must be 0 (no limit) or more")


@dataclass(frozen=True, slots=True)
class _DisplayRef:
    index: int
    output_type: str
    execution_count: Any


class _Cell:
    """Shadow of one cell's outputs, as the document holds them once a batch is applied."""

    __slots__ = (
        "budget",
        "clear_pending",
        "count",
        "displays",
        "execution_count",
        "stream",
        "stream_entry",
    )

    def __init__(self) -> None:
        self.count = 0
        self.stream: StreamOutput | None = None  # the last output, when it is a stream
        self.stream_entry: _Entry | None = None  # its entry in the current batch
        self.displays: dict[str, list[_DisplayRef]] = {}
        self.clear_pending = False  # clear_output(wait=True) not applied yet
        self.execution_count: int | None = None  # from execute_input, written at idle
        # Sizes of the outputs (the last stream's as of the last output boundary).
        self.budget = CellBudget()


class _Entry:
    """One queued operation; a stream entry is materialized at flush time."""

    __slots__ = ("cell_id", "dropped", "op", "stream")

    def __init__(self, cell_id: str, op: Op | None, stream: StreamOutput | None = None) -> None:
        self.cell_id = cell_id
        self.op = op
        self.stream = stream
        self.dropped = False


class OutputReducer:
    """Reduces the iopub messages of one notebook document to output operations.

    Feed it messages with :meth:`feed`, then call :meth:`flush` to take the batch of
    operations to apply in one transaction. It does no I/O; its shadow of every cell
    assumes the writer applies every flushed operation.
    """

    def __init__(self, limits: OutputLimits | None = None, *, record_timing: bool = False) -> None:
        """Create a reducer with empty cells.

        Args:
            limits: Size limits; the defaults when None.
            record_timing: Whether each run records ``metadata.execution`` (JupyterLab's
                ``recordTiming``); if not, a run deletes it, as JupyterLab does then.
        """
        self._limits = limits if limits is not None else OutputLimits()
        self.record_timing = record_timing
        #: The timing recorded so far of each cell that runs, when recording.
        self._timing: dict[str, dict[str, str]] = {}
        #: Cells started and not fed nor recorded since (see start_cell).
        self._untouched: set[str] = set()
        self._cells: dict[str, _Cell] = {}
        self._display_cells: dict[str, dict[str, None]] = {}  # display_id -> cell ids
        self._queue: list[_Entry] = []
        self._batch_outputs: dict[str, list[_Entry]] = {}  # per cell, droppable by a clear

    @property
    def limits(self) -> OutputLimits:
        """The size limits in force."""
        return self._limits

    def output_count(self, cell_id: str) -> int:
        """Return how many outputs the cell holds once the queued operations apply."""
        cell = self._cells.get(cell_id)
        return cell.count if cell is not None else 0

    def start_cell(self, cell_id: str, *, again: bool = False) -> None:
        """Start a new execution of a cell: clear its outputs and count, mark it running,
        and trust it (what it will output comes from running the notebook's code).

        ``again``: the cell was started when it was queued, and starts to run now: if
        nothing was fed or recorded for it since, it is as that start left it, and
        nothing is queued (a Run All's cells are each started twice).
        """
        if again and cell_id in self._untouched:
            return
        self._untouched.add(cell_id)
        self._queue_clear(cell_id)
        self._queue_op(cell_id, TrustCell(cell_id))
        self._queue_op(cell_id, SetExecutionCount(cell_id, None))
        self._queue_op(cell_id, SetExecutionState(cell_id, "running"))
        if self.record_timing:
            self._timing[cell_id] = {}
        else:
            self._queue_op(cell_id, SetExecutionTiming(cell_id, None))

    def record(self, cell_id: str, event: str, date: object) -> None:
        """Record when ``event`` of the cell's run happened (``iopub.status.busy``,
        ``shell.execute_reply``...), if recording: ``date`` is the message's header date
        (or ``metadata.started``), as the kernel wrote it."""
        self._untouched.discard(cell_id)
        timing = self._timing.get(cell_id) if self.record_timing else None
        if isinstance(date, datetime.datetime):  # deserialized by jupyter_client
            date = date.isoformat().replace("+00:00", "Z")
        if timing is None or not isinstance(date, str) or not date:
            return
        timing[event] = date
        self._queue_op(cell_id, SetExecutionTiming(cell_id, dict(timing)))
        if event == "shell.execute_reply" and "iopub.status.idle" in timing:
            del self._timing[cell_id]  # complete; a reply may also come before idle

    def forget_cell(self, cell_id: str) -> None:
        """Forget a cell's shadow state and display ids (e.g. the cell was deleted).

        Operations already queued for it are still flushed.
        """
        self._reset_cell(cell_id)
        self._cells.pop(cell_id, None)
        self._untouched.discard(cell_id)

    def feed(self, cell_id: str, msg: KernelMessage) -> None:
        """Apply one iopub message whose output goes to ``cell_id``.

        Unknown message types, and messages with missing or malformed fields, are
        ignored. ``update_display_data`` may change outputs in any cell.

        Args:
            cell_id: The cell the message's parent request ran.
            msg: The deserialized message.
        """
        self._untouched.discard(cell_id)
        unpacked = _unpack(msg)
        if unpacked is None:
            return
        msg_type, content = unpacked
        if msg_type == "stream":
            self._stream(cell_id, content)
        elif msg_type in ("display_data", "execute_result", "error"):
            self._output(cell_id, msg_type, content)
        elif msg_type == "update_display_data":
            self._update_display(content)
        elif msg_type == "clear_output":
            self._clear_output(cell_id, wait=bool(content.get("wait", False)))
        elif msg_type == "execute_input":
            self.record(cell_id, "iopub.execute_input", msg.get("header", {}).get("date"))
            # Held until idle: JupyterLab treats a new execution count as the end of the
            # run and would set the cell idle itself, hiding the [*] of a running cell.
            count = content.get("execution_count")
            if isinstance(count, int) and not isinstance(count, bool):
                self._cell(cell_id).execution_count = count
        elif msg_type == "status" and content.get("execution_state") == "busy":
            self.record(cell_id, "iopub.status.busy", msg.get("header", {}).get("date"))
        elif msg_type == "status" and content.get("execution_state") == "idle":
            self.record(cell_id, "iopub.status.idle", msg.get("header", {}).get("date"))
            cell = self._cells.get(cell_id)
            if cell is not None:
                cell.clear_pending = False
                if cell.execution_count is not None:
                    self._queue_op(cell_id, SetExecutionCount(cell_id, cell.execution_count))
                    cell.execution_count = None
            self._queue_op(cell_id, SetExecutionState(cell_id, "idle"))

    def flush(self) -> list[Op]:
        """Return the operations queued since the last flush, in order, and reset the batch.

        Each stream output touched in the batch yields one operation, at the place where
        the batch first touched it, so it precedes every later operation of its cell.
        """
        ops: list[Op] = []
        for entry in self._queue:
            if entry.dropped:
                continue
            op = entry.stream.take_op(entry.cell_id) if entry.stream else entry.op
            if op is not None:
                ops.append(op)
        self._queue = []
        self._batch_outputs = {}
        return ops

    # -- message handlers ----------------------------------------------------------

    def _stream(self, cell_id: str, content: dict[str, Any]) -> None:
        # What output_from_message checks of a stream, without building its output: a
        # flushed line costs a message, and this runs for each one.
        name, text = content.get("name"), content.get("text")
        if not isinstance(name, str) or not isinstance(text, str) or not text:
            return
        cell = self._before_output(cell_id)
        stream = cell.stream
        cap = self._limits.stream_segment_chars
        if stream is None or stream.name != name or stream.is_full(cap):
            if stream is not None and stream.name == name:
                self._append(cell_id, cell, continuation())
            stream = self._new_stream(cell_id, cell, name)
        elif not stream.in_batch:
            stream.in_batch = True
            cell.stream_entry = _Entry(cell_id, None, stream)
            self._queue_entry(cell.stream_entry, output=True)
        done = stream.line.feed(text)
        if done:
            self._take_completed(cell_id, cell, stream, done)
            stream = cell.stream or stream
        if len(stream.line) > self._limits.line_chars:
            # A line that never ends (dots printed forever) would grow one Text without
            # bound: its text so far counts as completed, and the next text starts a new
            # segment. A later "\r" then rewrites only what follows the cut.
            stream.add_completed(stream.line.text)
            stream.line = LineBuffer()

    def _take_completed(self, cell_id: str, cell: _Cell, stream: StreamOutput, done: str) -> None:
        """Give completed lines to ``stream``, continuing in new outputs past the cap."""
        cap = self._limits.stream_segment_chars
        line = stream.line  # already holds the unfinished line that follows ``done``
        # Walk ``done`` with an index: slicing off each segment would copy the rest of a
        # large message once per segment (quadratic: 80% of the time on 10 MB messages).
        start, end = 0, len(done)
        budget = cell.budget
        while True:
            # Only a truncated cell spills (checked here: a call per flushed line costs).
            if budget.marker is None:
                skip = start
            else:
                skip = self._spill_flood(cell_id, cell, stream, done, start, end)
            if skip > start:
                # The tail and the flood's start went to the spill file: go on after
                # the marker (no continuation needed there).
                start = skip
                stream = self._new_stream(cell_id, cell, stream.name)
                stream.line = line
            room = cap - stream.completed_len
            if end - start < room:
                stream.add_completed(done[start:] if start else done)
                return
            # Cut at the first line end that fills the segment; ``done`` ends with "\n".
            cut = done.find("\n", start + max(room - 1, 0)) + 1
            stream.add_completed(done[start:cut])
            start = cut
            if start == end and line.is_empty():
                return  # full: the next text starts the next segment
            stream.line = LineBuffer()
            name = stream.name
            self._append(cell_id, cell, continuation())
            stream = self._new_stream(cell_id, cell, name)
            stream.line = line
            if start == end:
                return

    def _spill_flood(
        self, cell_id: str, cell: _Cell, stream: StreamOutput, done: str, start: int, end: int
    ) -> int:
        """In a truncated cell, completed text larger than half its tail's room would
        mostly pass through the document on its way to the spill file: the tail is
        dropped and that text spilled directly, up to the last quarter of the room. Returns where
        the text for the document starts (``start`` if nothing was spilled).

        Without this a 10 MB message would cost a transaction that inserts and deletes
        150 segments; yrs keeps a tombstone of each, and appending to an array costs
        time in its tombstones.
        """
        limit = self.limits.cell_output_chars
        budget = cell.budget
        if not limit or budget.marker is None:
            return start
        room = limit - budget.head
        if end - start <= room // 2:
            return start
        cut = done.rfind("\n", start, end - max(room // 4, 1)) + 1
        if cut <= start:
            return start
        # The unfinished line follows ``done``: it moves on to the next stream output,
        # so it must not be written (then spilled) with the dropped one.
        stream.line = LineBuffer()
        self._settle_stream(cell)
        self._seal_stream(cell)
        count = budget.drop_all()
        if count:
            self._queue_op(cell_id, DropOutputs(cell_id, count), output=True)
            cell.count -= count
            self._shift_displays(cell_id, cell, budget.marker + 1, -count)
        self._queue_op(cell_id, SpillText(cell_id, stream.name, done[start:cut]), output=True)
        return cut

    def _output(self, cell_id: str, msg_type: str, content: dict[str, Any]) -> None:
        output = output_from_message(msg_type, content)
        if output is None:
            return
        cell = self._before_output(cell_id)
        index = self._append(cell_id, cell, output)
        display_id = display_id_of(content) if msg_type != "error" else None
        if display_id is not None:
            ref = _DisplayRef(index, msg_type, output.get("execution_count"))
            cell.displays.setdefault(display_id, []).append(ref)
            self._display_cells.setdefault(display_id, {})[cell_id] = None

    def _update_display(self, content: dict[str, Any]) -> None:
        display_id = display_id_of(content)
        update = output_from_message("display_data", content)
        if display_id is None or update is None:
            return
        for cell_id in self._display_cells.get(display_id, {}):
            for ref in self._cells[cell_id].displays[display_id]:
                output: OutputDict = {
                    "output_type": ref.output_type,
                    "data": dict(update["data"]),
                    "metadata": dict(update["metadata"]),
                }
                if ref.output_type == "execute_result":
                    output["execution_count"] = ref.execution_count
                self._cells[cell_id].budget.resize(ref.index, output_chars(output))
                self._queue_op(cell_id, ReplaceOutput(cell_id, ref.index, output), output=True)

    def _clear_output(self, cell_id: str, *, wait: bool) -> None:
        if wait:
            self._cell(cell_id).clear_pending = True
        else:
            self._queue_clear(cell_id)

    # -- shadow state and queue ----------------------------------------------------

    def _cell(self, cell_id: str) -> _Cell:
        cell = self._cells.get(cell_id)
        if cell is None:
            cell = self._cells[cell_id] = _Cell()
        return cell

    def _before_output(self, cell_id: str) -> _Cell:
        """Apply a pending clear_output(wait=True) just before the cell's next output."""
        cell = self._cell(cell_id)
        if cell.clear_pending:
            self._queue_clear(cell_id)
            cell = self._cells[cell_id]
        return cell

    def _append(self, cell_id: str, cell: _Cell, output: OutputDict) -> int:
        size = output_chars(output)
        self._make_room(cell_id, cell, size)
        index = cell.count
        cell.count += 1
        cell.budget.append(size, None)
        cell.stream = None
        self._queue_op(cell_id, AppendOutput(cell_id, output), output=True)
        return index

    def _new_stream(self, cell_id: str, cell: _Cell, name: str) -> StreamOutput:
        self._make_room(cell_id, cell, self.limits.stream_segment_chars)
        stream = StreamOutput(cell.count, name)
        cell.count += 1
        cell.budget.append(0, name)
        cell.stream = stream
        stream.in_batch = True
        entry = _Entry(cell_id, None, stream)
        cell.stream_entry = entry
        self._queue_entry(entry, output=True)
        return stream

    # -- size limit ------------------------------------------------------------------

    def _make_room(self, cell_id: str, cell: _Cell, incoming: int) -> None:
        """Before a new output of about ``incoming`` characters: keep the cell in limits.

        The first time the cell would pass ``cell_output_chars``, the marker goes after
        the outputs that fit in half the limit (the head); then the oldest outputs after
        the marker are dropped until the tail and the new output fit in what is left.
        """
        limit = self.limits.cell_output_chars
        if not limit:
            return
        self._settle_stream(cell)
        budget = cell.budget
        marker = budget.place_marker(incoming, limit)
        if marker is not None:
            self._seal_stream(cell)
            self._queue_op(cell_id, TruncateOutputs(cell_id, marker), output=True)
            cell.count += 1
            self._shift_displays(cell_id, cell, marker, +1)
        count = budget.drop(incoming, limit)
        if count:
            assert budget.marker is not None
            self._seal_stream(cell)
            self._queue_op(cell_id, DropOutputs(cell_id, count), output=True)
            cell.count -= count
            self._shift_displays(cell_id, cell, budget.marker + 1, -count)

    @staticmethod
    def _settle_stream(cell: _Cell) -> None:
        """Bring the size of the cell's last stream output up to date."""
        stream = cell.stream
        if stream is not None:
            cell.budget.resize(stream.index, stream.completed_len + len(stream.line.text))

    @staticmethod
    def _seal_stream(cell: _Cell) -> None:
        """Make the last stream's pending operation now, with the index it has now.

        The cell's outputs are about to move; the stream gets no more text (a new output
        follows), so its operation can be made before the flush.
        """
        entry = cell.stream_entry
        if entry is not None and entry.stream is not None and not entry.dropped:
            entry.op = entry.stream.take_op(entry.cell_id)
            entry.stream = None
        cell.stream_entry = None
        cell.stream = None

    def _shift_displays(self, cell_id: str, cell: _Cell, index: int, by: int) -> None:
        """Outputs from ``index`` on moved by ``by``; ``by < 0``: the ``-by`` outputs from
        ``index`` on are gone."""
        gone = range(index, index - by) if by < 0 else range(0)
        for display_id, refs in list(cell.displays.items()):
            moved = [
                _DisplayRef(ref.index + by, ref.output_type, ref.execution_count)
                if ref.index >= index
                else ref
                for ref in refs
                if ref.index not in gone
            ]
            if moved:
                cell.displays[display_id] = moved
                continue
            del cell.displays[display_id]
            cells = self._display_cells[display_id]
            cells.pop(cell_id, None)
            if not cells:
                del self._display_cells[display_id]

    def _queue_clear(self, cell_id: str) -> None:
        # The clear wipes whatever this batch did to the cell's outputs, so drop it:
        # a clear_output(wait=True) loop then costs one clear and one output per batch.
        for entry in self._batch_outputs.pop(cell_id, ()):
            entry.dropped = True
        self._reset_cell(cell_id)
        self._queue_op(cell_id, ClearOutputs(cell_id), output=True)

    def _reset_cell(self, cell_id: str) -> None:
        """Forget the cell's outputs (not its pending execution count)."""
        fresh = _Cell()
        cell = self._cells.get(cell_id)
        if cell is not None:
            fresh.execution_count = cell.execution_count
            for display_id in cell.displays:
                cells = self._display_cells[display_id]
                cells.pop(cell_id, None)
                if not cells:
                    del self._display_cells[display_id]
        self._cells[cell_id] = fresh

    def _queue_op(self, cell_id: str, op: Op, *, output: bool = False) -> None:
        self._queue_entry(_Entry(cell_id, op), output=output)

    def _queue_entry(self, entry: _Entry, *, output: bool) -> None:
        self._queue.append(entry)
        if output:
            self._batch_outputs.setdefault(entry.cell_id, []).append(entry)


def continuation() -> OutputDict:
    """The empty output between two segments of one stream.

    JupyterLab merges consecutive stream outputs of one name into one output of its
    model, and then writes the merged text back into the shared document at its own
    index: every browser would append each new segment to an earlier one. An output
    that is not a stream between them prevents the merge; it renders as nothing.
    """
    return {
        "output_type": "display_data",
        "data": {"text/plain": ""},
        "metadata": {"ydoc_outputs": {"continued": True}},
    }


def _unpack(msg: KernelMessage) -> tuple[str, dict[str, Any]] | None:
    """Return ``(msg_type, content)``, or None if the message lacks either."""
    if not isinstance(msg, dict):
        return None
    header = msg.get("header")
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    if not isinstance(msg_type, str):
        msg_type = msg.get("msg_type")
    content = msg.get("content")
    if not isinstance(msg_type, str) or not isinstance(content, dict):
        return None
    return msg_type, content
