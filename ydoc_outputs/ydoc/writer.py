"""Apply the reducer's output operations to a YNotebook, one Y transaction per batch.

This is the only place where the server writes outputs into the shared document.
It shapes every change the way the stock JupyterLab frontend can render live:
outputs are only appended at the end or deleted, and stream edits touch the tail
of the last output only (see DESIGN.md, "How remote output changes are rendered").
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from jupyter_ydoc import YNotebook
from pycrdt import Array, Map, Text

from ..outputs.ops import (
    AppendOutput,
    ClearOutputs,
    DropOutputs,
    EditStream,
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

__all__ = [
    "SERVER_ORIGIN",
    "TRUNCATION_KEY",
    "OutputWriter",
    "SpillSink",
    "find_code_cell",
    "is_marker",
    "output_dict",
    "output_text",
    "truncation_marker",
    "youtput",
]

#: Origin of every transaction the server makes. The notebook's undo manager only
#: tracks transactions without an origin, so users can never undo kernel output and
#: the undo stack does not grow with it.
SERVER_ORIGIN = "ydoc-outputs:server"

log = logging.getLogger(__name__)

#: Metadata key of the truncation marker output: ``{"ydoc_outputs": {"truncated": true}}``.
TRUNCATION_KEY = "ydoc_outputs"


class SpillSink(Protocol):
    """Where outputs dropped from a cell's tail window go (``store/spill.py``)."""

    def append(self, cell_id: str, text: str) -> None: ...

    def clear(self, cell_id: str) -> None: ...


#: Builds the truncation marker output of a cell.
MarkerFactory = Callable[[str], OutputDict]


def truncation_marker(limit: int | None = None, url: str | None = None) -> OutputDict:
    """The output that stands between the head and the tail of a truncated cell.

    Args:
        limit: The cell limit in characters (``cell_output_chars``).
        url: Where the whole output can be fetched, if anywhere.
    """
    if limit:
        text = (
            f"[ydoc-outputs] This cell printed more than {limit:,} characters. The first "
            f"and the last {limit // 2:,} are shown; the middle was moved out of the notebook"
        )
    else:
        text = "[ydoc-outputs] Output truncated: the middle was moved out of the notebook"
    data = {"text/plain": text + (f": {url}" if url else ".")}
    if url:
        link = f'<a href="{html.escape(url)}" target="_blank">whole output</a>'
        data["text/html"] = f"<pre>{html.escape(text)} ({link}).</pre>"
    return {
        "output_type": "display_data",
        "data": data,
        "metadata": {TRUNCATION_KEY: {"truncated": True}},
    }


def default_marker(cell_id: str) -> OutputDict:
    return truncation_marker()


def is_marker(output: Any) -> bool:
    """Whether a Y output is the truncation marker (its metadata may be a dict or Map)."""
    metadata = output.get("metadata") if isinstance(output, Map) else None
    if isinstance(metadata, Map):
        metadata = metadata.to_py()
    mine = metadata.get(TRUNCATION_KEY) if isinstance(metadata, dict) else None
    return isinstance(mine, dict) and mine.get("truncated") is True


def output_text(output: OutputDict) -> str:
    """An output as plain text, for the spill file: a stream's text, else its
    ``text/plain`` (or traceback), else a one-line placeholder."""
    output_type = output.get("output_type")
    metadata = output.get("metadata")
    mine = metadata.get(TRUNCATION_KEY) if isinstance(metadata, dict) else None
    if isinstance(mine, dict) and mine.get("continued"):
        return ""  # the empty output between two segments of a stream
    if output_type == "stream":
        text = output.get("text", "")
        return text if isinstance(text, str) else "".join(map(str, text))
    if output_type == "error":
        traceback = output.get("traceback")
        if isinstance(traceback, list):
            return "\n".join(map(str, traceback)) + "\n"
    data = output.get("data")
    plain = data.get("text/plain") if isinstance(data, dict) else None
    if isinstance(plain, list):
        plain = "".join(map(str, plain))
    if isinstance(plain, str):
        return plain if plain.endswith("\n") else plain + "\n"
    kinds = ", ".join(sorted(data)) if isinstance(data, dict) else ""
    return f"[{output_type}: {kinds}]\n"


def youtput(output: OutputDict) -> Map[Any]:
    """Build the Y representation of one nbformat output (a stream's text is a ``Text``)."""
    value = dict(output)
    if value.get("output_type") == "stream":
        text = value.get("text", "")
        value["text"] = Text(text if isinstance(text, str) else "".join(text))
    return Map(value)


def find_code_cell(ynotebook: YNotebook, cell_id: str) -> Map[Any] | None:
    """Return the code cell with this id, or None."""
    for ycell in ynotebook.ycells:
        if ycell.get("id") == cell_id:
            return ycell if ycell.get("cell_type") == "code" else None
    return None


class OutputWriter:
    """Writes output operations into one YNotebook."""

    def __init__(
        self,
        ynotebook: YNotebook,
        spill: SpillSink | None = None,
        marker: MarkerFactory = default_marker,
        on_change: Callable[[], None] | None = None,
        on_trust: Callable[[], None] | None = None,
        find: Callable[[str], Map[Any] | None] | None = None,
    ) -> None:
        """Write into ``ynotebook``; ``on_change`` is called after a transaction that
        changed what the notebook saves (anything but a cell's execution state), and
        ``on_trust`` after one that trusted a cell that was not (pages read a cell's
        trust only when they build it). ``find`` looks a cell up by id (the room's cell
        index); without it each transaction walks the cells."""
        self._ynotebook = ynotebook
        self._find = find
        self._on_change = on_change
        self._on_trust = on_trust
        self._trusted = False
        self._spill = spill
        self._marker = marker
        #: Where each truncated cell's marker was last found.
        self._markers: dict[str, int] = {}

    def apply(self, ops: Iterable[Op]) -> int:
        """Apply ``ops`` in one transaction; return how many were applied.

        Operations on a cell that no longer exists (deleted by a user) are dropped.
        """
        ops = list(ops)
        if not ops:
            return 0
        applied = 0
        saved_change = False
        with self._ynotebook.ydoc.transaction(origin=SERVER_ORIGIN):
            cells = self._index_cells({op.cell_id for op in ops})
            for op in ops:
                ycell = cells.get(op.cell_id)
                if ycell is None:
                    continue
                self._apply_one(ycell, op)
                applied += 1
                saved_change = saved_change or not isinstance(op, SetExecutionState)
        if saved_change and self._on_change is not None:
            self._on_change()
        if self._trusted:
            self._trusted = False
            if self._on_trust is not None:
                self._on_trust()
        if applied < len(ops):
            missing = sorted({op.cell_id for op in ops} - set(cells))
            log.info("dropped output for cells that no longer exist: %s", ", ".join(missing))
        return applied

    def _index_cells(self, wanted: set[str]) -> dict[str, Map[Any]]:
        found: dict[str, Map[Any]] = {}
        if self._find is not None:
            for cell_id in wanted:
                ycell = self._find(cell_id)
                if ycell is not None and ycell.get("cell_type") == "code":
                    found[cell_id] = ycell
            return found
        for ycell in self._ynotebook.ycells:
            cell_id = ycell.get("id")
            if cell_id in wanted and cell_id not in found and ycell.get("cell_type") == "code":
                found[cell_id] = ycell
                if len(found) == len(wanted):
                    break
        return found

    @staticmethod
    def _outputs(ycell: Map[Any]) -> Array[Any]:
        outputs = ycell.get("outputs")
        if not isinstance(outputs, Array):
            outputs = Array()
            ycell["outputs"] = outputs
        return outputs

    def _apply_one(self, ycell: Map[Any], op: Op) -> None:
        if isinstance(op, SetExecutionState):
            if ycell.get("execution_state") != op.state:
                ycell["execution_state"] = op.state
        elif isinstance(op, SetExecutionCount):
            if ycell.get("execution_count") != op.count:
                ycell["execution_count"] = op.count
        elif isinstance(op, TrustCell):
            metadata = ycell.get("metadata")
            if isinstance(metadata, Map) and metadata.get("trusted") is not True:
                metadata["trusted"] = True
                self._trusted = True
        elif isinstance(op, SetExecutionTiming):
            metadata = ycell.get("metadata")
            if not isinstance(metadata, Map):
                return  # a cell without metadata is not valid nbformat: left alone
            if op.timing is not None:
                metadata["execution"] = op.timing  # a JSON value, as the page sets it
            elif "execution" in metadata:
                del metadata["execution"]
        elif isinstance(op, ClearOutputs):
            outputs = self._outputs(ycell)
            if len(outputs):
                outputs.clear()
            if self._spill is not None:
                self._spill.clear(op.cell_id)
        elif isinstance(op, AppendOutput):
            self._outputs(ycell).append(youtput(op.output))
        elif isinstance(op, EditStream):
            self._edit_stream(self._outputs(ycell), op)
        elif isinstance(op, ReplaceOutput):
            self._replace(self._outputs(ycell), op)
        elif isinstance(op, TruncateOutputs):
            self._truncate(self._outputs(ycell), op)
        elif isinstance(op, DropOutputs):
            self._drop(self._outputs(ycell), op)
        elif isinstance(op, SpillText) and self._spill is not None:
            self._spill.append(op.cell_id, op.text)

    def _truncate(self, outputs: Array[Any], op: TruncateOutputs) -> None:
        count = len(outputs)
        index = min(max(op.index, 0), count)
        # Inserted outputs render at the end: move the ones after the marker's place,
        # from where JupyterLab's model agrees on indices (the head's last output may
        # be a stream that the next segments were merged into).
        start = _rewrite_start(outputs, index) if index < count else index
        kept = [output_dict(outputs[i]) for i in range(start, count)]
        kept.insert(index - start, self._marker(op.cell_id))
        _rewrite(outputs, start, kept)

    def _drop(self, outputs: Array[Any], op: DropOutputs) -> None:
        # Found by its metadata, not by index: a user may have changed the outputs.
        # The place it was found last is checked first: a scan per drop would cost
        # O(outputs in the head) each time.
        count = len(outputs)
        known = self._markers.get(op.cell_id)
        if known is not None and known < count and is_marker(outputs[known]):
            marker: int | None = known
        else:
            marker = next((i for i in range(count) if is_marker(outputs[i])), None)
        if marker is None:
            return
        self._markers[op.cell_id] = marker
        first = marker + 1
        end = min(first + op.count, count)
        if self._spill is not None:
            self._spill.append(
                op.cell_id, "".join(output_text(output_dict(outputs[i])) for i in range(first, end))
            )
        # The marker and the whole tail go, the marker and the kept part come back:
        # JupyterLab's model merges the tail's stream segments, so deleting only the
        # first ones would miss there (see _rewrite).
        kept = [output_dict(outputs[marker])] + [output_dict(outputs[i]) for i in range(end, count)]
        _rewrite(outputs, marker, kept)

    @staticmethod
    def _edit_stream(outputs: Array[Any], op: EditStream) -> None:
        count = len(outputs)
        last = outputs[count - 1] if count else None
        text = last.get("text") if isinstance(last, Map) else None
        if (
            op.index == count - 1
            and isinstance(text, Text)
            and last is not None
            and last.get("output_type") == "stream"
            and last.get("name") == op.name
        ):
            if not op.delete:  # the usual case, a stream that goes on: no length needed
                if op.insert:
                    text += op.insert
                return
            length = len(text)  # UTF-8 bytes, pycrdt's offset unit
            if op.delete <= length:
                del text[length - op.delete : length]
                if op.insert:
                    text += op.insert
                return
        # Someone changed the outputs under us (e.g. "Clear outputs" in a browser):
        # continue the stream in a fresh output rather than corrupt another one.
        if op.insert:
            outputs.append(youtput({"output_type": "stream", "name": op.name, "text": op.insert}))

    @staticmethod
    def _replace(outputs: Array[Any], op: ReplaceOutput) -> None:
        count = len(outputs)
        if not 0 <= op.index < count:
            return
        # The frontend renders every inserted output at the end, so an output in the
        # middle is replaced by deleting it and everything after it, then appending
        # the replacement and the rest again, all in this one transaction. It applies
        # deletions by index to a model that merges consecutive segments of a stream:
        # the rewrite starts before the first such run, where both indices agree.
        start = _rewrite_start(outputs, min(op.index, _first_merged_run(outputs, op.index)))
        kept = [output_dict(outputs[i]) for i in range(start, count)]
        kept[op.index - start] = op.output
        _rewrite(outputs, start, kept)


def _stream_name(output: Any) -> str | None:
    if isinstance(output, Map) and output.get("output_type") == "stream":
        name = output.get("name")
        return name if isinstance(name, str) else None
    return None


def _first_merged_run(outputs: Array[Any], end: int) -> int:
    """The index of the first output before ``end`` that the next one continues (both
    streams of one name), which JupyterLab merges into one; ``end`` if there is none."""
    previous = _stream_name(outputs[0]) if end > 0 else None
    for i in range(1, end + 1 if end < len(outputs) else end):
        name = _stream_name(outputs[i])
        if name is not None and name == previous:
            return i - 1
        previous = name
    return end


def _rewrite_start(outputs: Array[Any], start: int) -> int:
    """Where a rewrite that must include ``start`` begins: at a non-stream output, or 0.

    JupyterLab's model merges an appended stream into its last output when the output
    appended before was a stream of that name, and a deletion does not forget that name.
    A rewrite that begins with a non-stream output (or empties the cell) resets it.
    """
    while start > 0 and _stream_name(outputs[start]) is not None:
        start -= 1
    return start


def _rewrite(outputs: Array[Any], start: int, kept: list[OutputDict]) -> None:
    """Delete the outputs from ``start`` on, then append ``kept``.

    ``start`` must be 0 or a non-stream output, copied as ``kept[0]`` (see
    :func:`_rewrite_start`), and no two outputs before it may be segments of one stream.
    """
    count = len(outputs)
    if start < count:
        del outputs[start:count]
    for output in kept:
        outputs.append(youtput(output))


def output_dict(output: Any) -> OutputDict:
    """A Y output as a plain dict (empty if it is not a map)."""
    value = output.to_py() if isinstance(output, Map) else None
    return value if isinstance(value, dict) else {}
