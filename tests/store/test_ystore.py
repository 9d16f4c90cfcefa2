"""The SQLite update store on its own: append, load, squash, forget, sessions."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from jupyter_ydoc import YNotebook

from ydoc_outputs.store.ystore import UpdateStore


def notebook_updates(count: int) -> tuple[YNotebook, list[bytes]]:
    nb = YNotebook()
    updates: list[bytes] = []
    nb.ydoc.observe(lambda event: updates.append(event.update))
    nb.set(
        {
            "cells": [
                {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [],
                 "execution_count": None, "source": ""}
            ],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
        }
    )  # fmt: skip
    source = nb.ycells[0]["source"]
    for i in range(count):
        source += f"{i}\n"
    return nb, updates


def rebuilt(updates: list[bytes]) -> dict:
    nb = YNotebook()
    for update in updates:
        nb.ydoc.apply_update(update)
    return nb.get()


async def test_append_load_squash_and_forget(tmp_path: Path):
    store = UpdateStore(tmp_path / "sub" / "updates.db")
    await store.start()
    try:
        nb, updates = notebook_updates(200)
        for i in range(0, len(updates), 7):
            await store.append("doc", updates[i : i + 7])
        await store.append("other", updates[:1])
        stored = await store.load("doc")
        assert stored == updates
        assert rebuilt(stored) == nb.get()

        merged_away = await store.squash("doc", older_than=0)
        assert merged_away == len(updates) - 1
        squashed = await store.load("doc")
        assert len(squashed) == 1
        assert rebuilt(squashed) == nb.get()
        # Updates appended after a squash still apply on top of it.
        source = nb.ycells[0]["source"]
        more: list[bytes] = []
        nb.ydoc.observe(lambda event: more.append(event.update))
        source += "after\n"
        await store.append("doc", more)
        assert rebuilt(await store.load("doc")) == nb.get()
        # Recent history is kept as it is.
        assert await store.squash("doc", older_than=3600) == 0

        await store.forget("doc")
        assert await store.load("doc") == []
        assert await store.load("other") == updates[:1]
    finally:
        await store.stop()


async def test_saved_hashes_and_sessions_survive_a_reopen(tmp_path: Path):
    path = tmp_path / "updates.db"
    store = UpdateStore(path)
    await store.start()
    await store.set_saved("doc", "hash-1")
    await store.set_saved("doc", "hash-2")
    await store.add_session("session-a")
    await store.stop()

    again = UpdateStore(path)
    await again.start()
    try:
        assert await again.saved("doc") == "hash-2"
        assert await again.saved("unknown") is None
        assert await again.known_session("session-a")
        assert not await again.known_session("session-b")
    finally:
        await again.stop()


async def test_a_store_keyed_by_file_id_alone_drops_those_histories(tmp_path: Path):
    """Version 1 keyed histories by file id, whatever the room's kind: a notebook opened
    as text was rebuilt from the notebook's updates. Those cannot be told apart by kind."""
    path = tmp_path / "updates.db"
    store = UpdateStore(path)
    await store.start()
    _, updates = notebook_updates(3)
    await store.append("json:notebook:abc", updates)
    await store.set_saved("json:notebook:abc", "h2")
    await store.stop()
    db = sqlite3.connect(path)
    with db:  # what version 1 left: a bare file id, its saved hash, a session
        db.execute("INSERT INTO updates (doc, data, time) VALUES ('abc', x'0000', 0)")
        db.execute("INSERT INTO saved (doc, snapshot_hash) VALUES ('abc', 'h1')")
        db.execute("INSERT INTO sessions (id, time) VALUES ('old-session', 0)")
        db.execute("PRAGMA user_version = 1")
    db.close()

    store = UpdateStore(path)
    await store.start()
    assert await store.load("abc") == []
    assert await store.saved("abc") is None
    assert not await store.known_session("old-session")  # its clients reload
    assert await store.load("json:notebook:abc") == updates
    assert await store.saved("json:notebook:abc") == "h2"
    await store.add_session("new-session")
    await store.stop()
    store = UpdateStore(path)  # migrated once: a later start keeps everything
    await store.start()
    assert await store.known_session("new-session")
    await store.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_store_files_are_private_whatever_the_umask(tmp_path: Path, umask_022: None):
    # The store holds every output of every notebook: only the server's user may read it.
    existing = tmp_path / "home"
    existing.mkdir(mode=0o755)
    path = existing / "data" / "ydoc_outputs" / "updates.db"
    store = UpdateStore(path)
    await store.start()
    try:
        await store.append("doc", notebook_updates(3)[1])
        for name in ("updates.db", "updates.db-wal", "updates.db-shm"):
            assert mode(path.parent / name) == 0o600, name
        # The directories the store created; not the one that was already there.
        assert mode(existing / "data" / "ydoc_outputs") == 0o700
        assert mode(existing / "data") == 0o700
        assert mode(existing) == 0o755
    finally:
        await store.stop()


async def test_an_existing_store_is_made_private_on_open(tmp_path: Path, umask_022: None):
    # As an older version left it: 0644, with the -wal and -shm of a crashed server.
    path = tmp_path / "updates.db"
    older = sqlite3.connect(path)
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE t (x)")
    older.execute("INSERT INTO t VALUES (1)")
    older.commit()
    names = ("updates.db", "updates.db-wal", "updates.db-shm")
    assert [mode(tmp_path / name) for name in names] == [0o644] * 3
    store = UpdateStore(path)
    await store.start()
    try:
        await store.append("doc", notebook_updates(3)[1])
        assert [mode(tmp_path / name) for name in names] == [0o600] * 3
        assert len(await store.load("doc")) == len(notebook_updates(3)[1])
    finally:
        await store.stop()
        older.close()
