"""Outputs as terminal text, and a printer that shows each line of them once.

Pure: no pycrdt, no network. The notebook mirror (mirror.py) tells the printer what each
output's text is now, as often as it changes; the printer writes only what is new.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["OutputRecord", "TerminalPrinter", "output_text", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: Metadata key of the extension's own outputs (truncation marker, stream continuation).
_OWN_KEY = "ydoc_outputs"


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours of tracebacks)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def _joined(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(map(str, value))
    return None


def output_text(output: dict[str, Any]) -> str:
    """One nbformat output as a terminal shows it.

    A stream's text as printed (the server already applied ``\\r`` and ``\\b``), an error's
    traceback, the ``text/plain`` of anything else, or ``[image/png]`` when there is no
    text. Everything but a stream's last line ends with a newline; the empty output
    between two segments of a stream is nothing.
    """
    output_type = output.get("output_type")
    if output_type == "stream":
        return _joined(output.get("text")) or ""
    if output_type == "error":
        traceback = output.get("traceback")
        if isinstance(traceback, list) and traceback:
            return "\n".join(map(str, traceback)) + "\n"
        return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}\n"
    metadata = output.get("metadata")
    own = metadata.get(_OWN_KEY) if isinstance(metadata, dict) else None
    if isinstance(own, dict) and own.get("continued"):
        return ""
    data = output.get("data")
    if not isinstance(data, dict):
        return ""
    plain = _joined(data.get("text/plain"))
    if plain is None:
        return f"[{', '.join(sorted(data))}]\n" if data else ""
    return plain if plain.endswith("\n") or not plain else plain + "\n"


@dataclass(eq=False)
class OutputRecord:
    """What the printer knows of one output: its text as last seen, and how much of it
    was printed as whole lines (``text[:committed]``)."""

    #: Names the output's cell in headers.
    label: str = ""
    text: str = ""
    committed: int = 0

    @property
    def partial(self) -> str:
        """The unfinished last line (a progress bar), not printed as a line yet."""
        return self.text[self.committed :]


class TerminalPrinter:
    """Writes the new lines of outputs as their text grows or is rewritten.

    A line is printed once it ends; the unfinished last line of an output is its *live
    line*: on a terminal it is drawn in place below everything else and redrawn as it
    changes (a ``\\r`` progress bar); elsewhere it is printed once it is final (the output
    is ended by :meth:`finish`).
    """

    def __init__(
        self,
        out: TextIO,
        *,
        tty: bool,
        headers: bool = False,
        columns: Callable[[], int] | None = None,
    ) -> None:
        self._out = out
        self.tty = tty
        self._headers = headers
        self._columns = columns or (lambda: shutil.get_terminal_size().columns)
        #: The output whose unfinished line is drawn last (terminal only).
        self._live: OutputRecord | None = None
        self._drawn = False
        self._label: str | None = None

    def update(self, record: OutputRecord, text: str) -> None:
        """The output of ``record`` now reads ``text``: print its new whole lines."""
        if not self.tty:
            text = strip_ansi(text)
        old, done = record.text, record.committed
        if text[:done] != old[:done]:
            # Rewritten before what was printed (another client edited it): print again
            # from the first line that changed.
            same = 0
            limit = min(done, len(text))
            while same < limit and text[same] == old[same]:
                same += 1
            done = text.rfind("\n", 0, same) + 1
        record.text, record.committed = text, done
        end = text.rfind("\n") + 1
        if end > done:
            self._write(record, text[done:end])
            record.committed = end
        if self.tty:
            if record.partial:
                self._live = record
            elif self._live is record:
                self._live = None
            self._redraw()
        elif end > done:
            self._out.flush()

    def finish(self, record: OutputRecord) -> None:
        """``record``'s output will not change (its cell ended, or it was removed): its
        unfinished line, if any, becomes a printed line."""
        partial = record.partial
        if self._live is record:
            self._live = None
        if partial:
            self._write(record, partial + "\n")
            record.committed = len(record.text)
        if self.tty:
            self._redraw()
        elif partial:
            self._out.flush()

    def close(self) -> None:
        """Leave the terminal on a fresh line (the live line stays as it is)."""
        if self._live is not None:
            self.finish(self._live)
        self._out.flush()

    def _write(self, record: OutputRecord, lines: str) -> None:
        self._erase()
        if self._headers and record.label != self._label:
            self._out.write(f"--- {record.label} ---\n")
        self._label = record.label
        self._out.write(lines)

    def _erase(self) -> None:
        if self._drawn:
            self._out.write("\r\x1b[K")
            self._drawn = False

    def _redraw(self) -> None:
        self._erase()
        live = self._live
        if live is not None:
            line = live.partial
            width = max(self._columns() - 1, 1)
            if len(strip_ansi(line)) > width:
                # A wrapped line could not be redrawn in place: show its end.
                line = strip_ansi(line)[-width:]
            self._out.write(line)
            self._drawn = True
        self._out.flush()
