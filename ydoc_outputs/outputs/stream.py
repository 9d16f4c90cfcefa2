"""The reducer's model of one stream output: the tail the document holds, plus this batch.

It turns all the stream text of a batch into one minimal edit of the output's tail.
"""

from __future__ import annotations

from .ops import AppendOutput, EditStream, Op
from .text import LineBuffer

__all__ = ["StreamOutput", "common_prefix_length", "utf8_length"]


class StreamOutput:
    """One stream output of a cell, shadowing what the document holds.

    The document holds ``completed text + flushed line``, where the flushed line is the
    unfinished last line as of the last flush. A batch adds completed lines and changes
    the unfinished line; :meth:`take_op` turns that into one operation.

    Attributes:
        index: The output's index in its cell.
        name: The stream name, ``"stdout"`` or ``"stderr"``.
        line: The unfinished last line, as of now.
        in_batch: True once the current batch holds an entry for this output
            (bookkeeping for the reducer).
    """

    __slots__ = (
        "_done",
        "_done_len",
        "_flushed_len",
        "_flushed_line",
        "_new",
        "in_batch",
        "index",
        "line",
        "name",
    )

    def __init__(self, index: int, name: str) -> None:
        """Create a stream output that is not in the document yet.

        Args:
            index: The output's index in its cell.
            name: The stream name.
        """
        self.index = index
        self.name = name
        self.line = LineBuffer()
        self.in_batch = False
        self._flushed_len = 0  # completed characters in the document
        self._flushed_line = ""  # the unfinished line in the document
        self._done: list[str] = []  # lines completed in this batch, in order
        self._done_len = 0
        self._new = True  # not in the document yet: the next op appends it

    @property
    def completed_len(self) -> int:
        """How many characters of completed lines the output holds, this batch included."""
        return self._flushed_len + self._done_len

    def is_full(self, cap: int) -> bool:
        """Return True if the output holds ``cap`` characters or more and ends a line."""
        return self.completed_len >= cap and self.line.is_empty()

    def add_completed(self, text: str) -> None:
        """Add completed lines (each ending with ``"\\n"``), which ``line`` no longer holds."""
        self._done.append(text)
        self._done_len += len(text)

    def take_op(self, cell_id: str) -> Op | None:
        """Return the operation that brings the document up to date, and start a new batch.

        Args:
            cell_id: The output's cell.

        Returns:
            An ``AppendOutput`` the first time, then an ``EditStream`` of the tail (its
            ``delete`` in UTF-8 bytes, pycrdt's ``Text`` offset unit), or None if the
            batch changed nothing.
        """
        tail = "".join(self._done) + self.line.text
        op: Op | None
        if self._new:
            op = AppendOutput(cell_id, {"output_type": "stream", "name": self.name, "text": tail})
        else:
            # Replace only the part of the old unfinished line that changed: appending to
            # a line deletes nothing, and a progress bar rewrites only its last digits.
            keep = common_prefix_length(self._flushed_line, tail)
            delete, insert = utf8_length(self._flushed_line[keep:]), tail[keep:]
            op = EditStream(cell_id, self.index, self.name, delete, insert)
            if not delete and not insert:
                op = None
        self._flushed_len += self._done_len
        self._flushed_line = self.line.text
        self._done, self._done_len = [], 0
        self._new = self.in_batch = False
        return op


def common_prefix_length(a: str, b: str, block: int = 256) -> int:
    """Return the length of the longest common prefix of ``a`` and ``b``.

    Compares blocks of ``block`` characters, then characters within the first block
    that differs, so long equal prefixes cost little Python work.
    """
    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    if longer.startswith(shorter):
        return len(shorter)
    for start in range(0, len(shorter), block):
        end = start + block
        if a[start:end] != b[start:end]:
            for i in range(start, min(end, len(shorter))):
                if a[i] != b[i]:
                    return i
    return len(shorter)  # pragma: no cover (startswith said otherwise)


def utf8_length(text: str) -> int:
    """Return the length of ``text`` in UTF-8 bytes, the unit of ``EditStream.delete``.

    pycrdt measures ``Text`` offsets in UTF-8 bytes, so a deletion counted in characters
    would cut a multi-byte character (e.g. a progress bar's "█") and make yrs panic.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
