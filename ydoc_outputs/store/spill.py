"""Spill files: the middle of a cell's output that the document no longer holds.

Past ``cell_output_chars``, a cell keeps the head and the tail of its output in the
document, with a marker between them; every output dropped from the tail window is
appended here as text, so head + spill + tail is the cell's whole output.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .private import PRIVATE_DIR, make_private, open_private, private_dirs

__all__ = ["SpillStore"]

log = logging.getLogger(__name__)

#: Bytes read at a time when a spill file is served.
CHUNK_BYTES = 1 << 20


def _directory(root: Path, document: str) -> Path:
    # Room names hold uuids, but a name must never escape ``root``: hash it.
    return root / hashlib.sha256(document.encode()).hexdigest()[:32]


class SpillStore:
    """Spill files of one document, one per cell, under ``root/<document key>/``.

    Writes are appends to an open file, made from the event loop: outputs are dropped a
    segment (``stream_segment_chars``) at a time, so each write is small.
    """

    def __init__(self, root: Path, document: str, former: str | None = None) -> None:
        """Spill files of ``document`` (its room name); those kept under the ``former``
        name (the file id alone, as kept before rooms were told apart by kind) move here."""
        self.directory = _directory(root, document)
        self._open: dict[str, IO[str]] = {}
        #: Whether the directory may hold files (None: not looked yet). Every run of a
        #: cell clears its spill file: most documents never spill, so no unlink each time.
        self._may_hold: bool | None = None
        if former is not None:
            old = _directory(root, former)
            if old.is_dir() and not self.directory.exists():
                try:
                    old.rename(self.directory)
                except OSError:
                    log.exception("cannot move the spill files of %s", document)

    def path(self, cell_id: str) -> Path:
        key = hashlib.sha256(cell_id.encode()).hexdigest()[:32]
        return self.directory / f"{key}.txt"

    def append(self, cell_id: str, text: str) -> None:
        """Append ``text`` to the cell's spill file. An I/O error is logged, not raised:
        the document must go on even if the disk is full."""
        try:
            file = self._open.get(cell_id)
            if file is None:
                self._may_hold = True
                # Private: a cell's output is as secret as its notebook (store/private.py).
                private_dirs(self.directory)
                make_private(self.directory, PRIVATE_DIR)
                fd = open_private(self.path(cell_id), os.O_WRONLY | os.O_APPEND)
                file = self._open[cell_id] = os.fdopen(
                    fd, "a", encoding="utf-8", errors="surrogatepass", newline=""
                )
            file.write(text)
            file.flush()
        except OSError:
            log.exception("cannot write the spill file of cell %s", cell_id)

    def clear(self, cell_id: str) -> None:
        """Forget the cell's spilled output (its outputs were cleared or it runs again)."""
        file = self._open.pop(cell_id, None)
        if file is not None:
            file.close()
        if self._may_hold is None:
            self._may_hold = self.directory.is_dir()
        if self._may_hold:
            with contextlib.suppress(FileNotFoundError):
                self.path(cell_id).unlink()

    def read(self, cell_id: str) -> Iterator[str]:
        """The cell's spilled text, in chunks; nothing if it has none."""
        file = self._open.get(cell_id)
        if file is not None:
            file.flush()
        try:
            with self.path(cell_id).open(encoding="utf-8", errors="surrogatepass", newline="") as f:
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk
        except FileNotFoundError:
            return

    def close(self) -> None:
        """Close the open files (the room stops); the files stay for later reads."""
        for file in self._open.values():
            file.close()
        self._open.clear()
