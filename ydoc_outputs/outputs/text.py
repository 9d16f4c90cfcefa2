"""Collapse ``\\r`` and ``\\b`` in stream text the way JupyterLab renders it, on the server.

The reducer keeps one :class:`LineBuffer` per stream output for its unfinished last line.
"""

from __future__ import annotations

import re

__all__ = ["LineBuffer", "collapse_controls"]

_CONTROLS = re.compile(r"[\r\n\b]")


class LineBuffer:
    """The unfinished last line of a stream, with a cursor.

    Feeding text follows a terminal-like model that matches JupyterLab's rendering
    (``fixBackspace`` then ``fixCarriageReturn``) for the usual progress-bar shapes:

    - a printable character overwrites the character under the cursor, or appends;
    - ``\\r`` moves the cursor to the start of the line (``"abc\\rX"`` renders ``"Xbc"``);
    - ``\\n`` completes the line, whatever the cursor (so ``"\\r\\n"`` acts like ``"\\n"``);
    - ``\\b`` deletes the character before the cursor, never a newline.

    A trailing ``\\r`` is remembered as a cursor at 0, so the next chunk overwrites the
    line. The stored text never contains ``\\r`` or ``\\b``. Feeding costs time linear in
    the chunk plus the current line, never in the text completed before.
    """

    __slots__ = ("_cursor", "_length", "_pieces")

    def __init__(self, text: str = "", cursor: int | None = None) -> None:
        """Create a line holding ``text`` with the cursor at ``cursor`` (default: the end).

        Raises:
            ValueError: If ``text`` holds a control character or ``cursor`` is out of range.
        """
        if _CONTROLS.search(text):
            raise ValueError("a line cannot hold \\r, \\n or \\b")
        if cursor is None:
            cursor = len(text)
        if not 0 <= cursor <= len(text):
            raise ValueError(f"cursor {cursor} out of range for a line of {len(text)}")
        self._pieces: list[str] = [text] if text else []
        self._length = len(text)
        self._cursor = cursor

    @property
    def text(self) -> str:
        """The line as it renders now."""
        if len(self._pieces) > 1:
            self._pieces = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    @property
    def cursor(self) -> int:
        """Where the next printable character goes (0 after a trailing ``\\r``)."""
        return self._cursor

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"LineBuffer({self.text!r}, cursor={self._cursor})"

    def is_empty(self) -> bool:
        """Return True if the line holds no character (the cursor is then at 0)."""
        return self._length == 0

    def feed(self, chunk: str) -> str:
        """Apply ``chunk`` to the line and return the lines it completed.

        Args:
            chunk: Raw stream text, possibly holding ``\\r``, ``\\n`` and ``\\b``.

        Returns:
            The completed lines, each ending with ``"\\n"`` and free of control
            characters, joined into one string (empty if no line was completed).
        """
        if not chunk:
            return ""
        if "\b" in chunk:
            return self._feed_controls(chunk)
        if self._cursor == self._length and "\r" not in chunk:
            return self._append_plain(chunk)
        return self._feed_returns(chunk)

    def _append_plain(self, chunk: str) -> str:
        # The common case (plain prints): no overwrite, so no per-character work at all.
        newline = chunk.rfind("\n")
        if newline < 0:
            self._pieces.append(chunk)
            self._length += len(chunk)
            self._cursor = self._length
            return ""
        done = self.text + chunk[: newline + 1]
        rest = chunk[newline + 1 :]
        self._pieces = [rest] if rest else []
        self._length = self._cursor = len(rest)
        return done

    def _feed_returns(self, chunk: str) -> str:
        # Progress bars: "\r" but no "\b". Each line is an overlay of its "\r" parts,
        # computed with string slices rather than per character.
        completed: list[str] = []
        text, cursor = self.text, self._cursor
        for i, segment in enumerate(chunk.split("\n")):
            if i:
                completed.append(text + "\n")
                text, cursor = "", 0
            if segment:
                text, cursor = _overlay(text, cursor, segment.split("\r"))
        self._pieces = [text] if text else []
        self._length = len(text)
        self._cursor = cursor
        return "".join(completed)

    def _feed_controls(self, chunk: str) -> str:
        # A gap buffer: ``left`` holds the characters before the cursor, ``right`` those
        # after it, reversed. Writing and ``\b`` cost O(1) per character; ``\r`` costs
        # O(cursor), and the cursor only grows by writing, so the total stays linear.
        line = self.text
        left = list(line[: self._cursor])
        right = list(reversed(line[self._cursor :]))
        completed: list[str] = []
        pos = 0
        for match in _CONTROLS.finditer(chunk):
            start = match.start()
            if start > pos:
                _write(left, right, chunk[pos:start])
            control = chunk[start]
            if control == "\n":
                right.reverse()
                completed.append("".join(left) + "".join(right) + "\n")
                left.clear()
                right.clear()
            elif control == "\r":
                if left:
                    left.reverse()
                    right.extend(left)
                    left.clear()
            elif left:  # "\b" at the start of a line deletes nothing
                left.pop()
            pos = start + 1
        if pos < len(chunk):
            _write(left, right, chunk[pos:])
        self._cursor = len(left)
        right.reverse()
        text = "".join(left) + "".join(right)
        self._pieces = [text] if text else []
        self._length = len(text)
        return "".join(completed)


def _overlay(line: str, cursor: int, parts: list[str]) -> tuple[str, int]:
    """Write ``parts[0]`` at ``cursor``, then each later part from the line start.

    Only the last part and the ends of earlier, longer parts survive, so walking the
    parts backwards gives the result in time linear in the parts plus the line.
    """
    first = parts[0]
    if first:
        line = line[:cursor] + first + line[cursor + len(first) :]
        cursor += len(first)
    if len(parts) == 1:
        return line, cursor
    visible: list[str] = []
    covered = 0
    for part in reversed(parts[1:]):
        if len(part) > covered:
            visible.append(part[covered:])
            covered = len(part)
    return "".join(visible) + line[covered:], len(parts[-1])


def _write(left: list[str], right: list[str], run: str) -> None:
    """Write printable ``run`` at the cursor of a gap buffer, overwriting what is there."""
    left.extend(run)
    overwritten = min(len(run), len(right))
    if overwritten:
        del right[len(right) - overwritten :]


def collapse_controls(text: str) -> str:
    """Render a whole stream text: apply its ``\\r`` and ``\\b`` and drop them.

    Args:
        text: Raw stream text.

    Returns:
        The text as :class:`LineBuffer` renders it, free of ``\\r`` and ``\\b``.
    """
    line = LineBuffer()
    return line.feed(text) + line.text
