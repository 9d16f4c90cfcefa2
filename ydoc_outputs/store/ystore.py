"""Crash-safe store of Y updates: every update of a room is appended to SQLite.

A room reopened after a crash or restart is rebuilt from its updates, so what was
printed before the crash is still there, and its Y history (and so every client's copy)
stays continuous. Old history is squashed into one update so the file stays bounded.

This is our own small store rather than pycrdt-store's ``SQLiteYStore``: that one
(0.1.5) writes one SQLite transaction per update, replays the history every 100 writes
for its checkpoints, and its history squash drops every update unless compression
callbacks are registered. Here a batch of updates is one transaction, and the database
runs in WAL mode, durable against a killed server process.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pycrdt import merge_updates

from .private import make_private, open_private, private_dirs

__all__ = ["UpdateStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL,
    data BLOB NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_doc ON updates (doc, seq);
CREATE TABLE IF NOT EXISTS saved (
    doc TEXT PRIMARY KEY,
    snapshot_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    time REAL NOT NULL
);
"""


#: Version 1 keyed documents by file id alone, so a notebook opened as text was rebuilt
#: from the notebook's history (an empty text, saved over the file). Version 2 keys them
#: by room name, ``{format}:{type}:{file_id}``.
SCHEMA_VERSION = 2


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a store of an earlier version up to :data:`SCHEMA_VERSION`.

    Version 1's histories cannot be told apart by kind, so they are dropped: every room
    then opens from its file, which a clean shutdown left up to date. The session ids go
    too, so that no client merges a copy built on a dropped history (it reloads).
    """
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version >= SCHEMA_VERSION:
        return
    with db:
        db.execute("DELETE FROM updates WHERE doc NOT LIKE '%:%:%'")
        db.execute("DELETE FROM saved WHERE doc NOT LIKE '%:%:%'")
        db.execute("DELETE FROM sessions")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class UpdateStore:
    """Y updates of every document of this server, in one SQLite database.

    All SQLite calls run on one worker thread, in order, so the event loop never
    blocks on disk and the updates of a document stay in the order they were made.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ydoc-store")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        private_dirs(self.path.parent)
        # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files it
        # creates the mode of the database file. Those an older version (or a crash) left
        # behind are made private too.
        os.close(open_private(self.path, os.O_RDWR))
        for suffix in ("-wal", "-shm"):
            make_private(self.path.with_name(self.path.name + suffix))
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a killed process (not a power cut).
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        _migrate(db)
        self._db = db

    async def stop(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the update store is not started")
        return self._db

    # -- updates -------------------------------------------------------------------------

    async def append(self, doc: str, updates: list[bytes]) -> None:
        """Append updates of ``doc``, in order, in one transaction."""
        if updates:
            await self._run(self._append, doc, updates)

    def _append(self, doc: str, updates: list[bytes]) -> None:
        now = time.time()
        with self.db:
            self.db.executemany(
                "INSERT INTO updates (doc, data, time) VALUES (?, ?, ?)",
                [(doc, update, now) for update in updates],
            )

    async def load(self, doc: str) -> list[bytes]:
        """Every stored update of ``doc``, oldest first (empty if none)."""
        result: list[bytes] = await self._run(self._load, doc)
        return result

    def _load(self, doc: str) -> list[bytes]:
        rows = self.db.execute("SELECT data FROM updates WHERE doc = ? ORDER BY seq", (doc,))
        return [bytes(row[0]) for row in rows]

    async def history(self, doc: str) -> list[tuple[bytes, float]]:
        """Every stored update of ``doc`` with the time it was stored, oldest first."""
        result: list[tuple[bytes, float]] = await self._run(self._history, doc)
        return result

    def _history(self, doc: str) -> list[tuple[bytes, float]]:
        rows = self.db.execute("SELECT data, time FROM updates WHERE doc = ? ORDER BY seq", (doc,))
        return [(bytes(row[0]), float(row[1])) for row in rows]

    async def squash(self, doc: str, older_than: float) -> int:
        """Merge the updates of ``doc`` older than ``older_than`` seconds into one.

        Returns:
            How many stored updates were merged away.
        """
        merged: int = await self._run(self._squash, doc, time.time() - older_than)
        return merged

    def _squash(self, doc: str, cutoff: float) -> int:
        with self.db:
            rows = self.db.execute(
                "SELECT seq, data, time FROM updates WHERE doc = ? AND time <= ? ORDER BY seq",
                (doc, cutoff),
            ).fetchall()
            if len(rows) < 2:
                return 0
            last_seq, last_time = rows[-1][0], rows[-1][2]
            update = merge_updates(*(bytes(row[1]) for row in rows))
            self.db.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, last_seq))
            # Keep the merged update at the place of the last one it replaces.
            self.db.execute(
                "INSERT INTO updates (seq, doc, data, time) VALUES (?, ?, ?, ?)",
                (last_seq, doc, update, last_time),
            )
            return len(rows) - 1

    def compact(self, doc: str, state: bytes) -> asyncio.Future[int]:
        """Replace every update of ``doc`` stored so far with ``state``, the whole
        document encoded as one update.

        Queued at once (no await before): updates appended after this call come after it
        and are kept. An update in ``state`` that is also appended later is applied twice
        on restore, which Y ignores.

        Returns:
            A future of how many stored updates were replaced.
        """
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, self._compact, doc, state)

    def _compact(self, doc: str, state: bytes) -> int:
        with self.db:
            last_seq, count = self.db.execute(
                "SELECT max(seq), count(*) FROM updates WHERE doc = ?", (doc,)
            ).fetchone()
            if last_seq is None:
                self.db.execute(
                    "INSERT INTO updates (doc, data, time) VALUES (?, ?, ?)",
                    (doc, state, time.time()),
                )
                return 0
            self.db.execute("DELETE FROM updates WHERE doc = ? AND seq <= ?", (doc, last_seq))
            self.db.execute(
                "INSERT INTO updates (seq, doc, data, time) VALUES (?, ?, ?, ?)",
                (last_seq, doc, state, time.time()),
            )
            return int(count)

    async def forget(self, doc: str) -> None:
        """Delete everything stored about ``doc`` (the file was deleted)."""
        await self._run(self._forget, doc)

    def _forget(self, doc: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM updates WHERE doc = ?", (doc,))
            self.db.execute("DELETE FROM saved WHERE doc = ?", (doc,))

    async def forget_file(self, file_id: str) -> None:
        """Delete everything stored about every room ``{format}:{type}:{file_id}``."""
        await self._run(self._forget_file, file_id)

    def _forget_file(self, file_id: str) -> None:
        # Room names end with the file id after the second colon; LIKE would need
        # escaping, so the names are selected in Python.
        with self.db:
            for table in ("updates", "saved"):
                names = [
                    name
                    for (name,) in self.db.execute(f"SELECT DISTINCT doc FROM {table}")
                    if name.split(":", 2)[-1] == file_id and name.count(":") >= 2
                ]
                for name in names:
                    self.db.execute(f"DELETE FROM {table} WHERE doc = ?", (name,))

    # -- what was last saved to disk ------------------------------------------------------

    async def set_saved(self, doc: str, snapshot_hash: str) -> None:
        """Remember the hash of what we last wrote to the file of ``doc``."""
        await self._run(self._set_saved, doc, snapshot_hash)

    def _set_saved(self, doc: str, snapshot_hash: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO saved (doc, snapshot_hash) VALUES (?, ?)",
                (doc, snapshot_hash),
            )

    async def saved(self, doc: str) -> str | None:
        """The hash of what we last wrote to the file of ``doc``, if any."""
        result: str | None = await self._run(self._saved, doc)
        return result

    def _saved(self, doc: str) -> str | None:
        row = self.db.execute("SELECT snapshot_hash FROM saved WHERE doc = ?", (doc,)).fetchone()
        return None if row is None else str(row[0])

    # -- server sessions ------------------------------------------------------------------

    async def add_session(self, session_id: str) -> None:
        await self._run(self._add_session, session_id)

    def _add_session(self, session_id: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO sessions (id, time) VALUES (?, ?)",
                (session_id, time.time()),
            )

    async def known_session(self, session_id: str) -> bool:
        """Whether an earlier process of this server, with this store, used ``session_id``."""
        found: bool = await self._run(self._known_session, session_id)
        return found

    def _known_session(self, session_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None
