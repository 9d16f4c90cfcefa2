"""The file watcher's verdict on a missing file (pure logic: stand-ins for the room
manager and the contents manager; the real path is in test_files.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from jupyter_ydoc import YNotebook

from ydoc_outputs.rooms.watcher import FileWatcher
from ydoc_outputs.store.documents import stamp_of


class Manager:
    def __init__(self) -> None:
        self.path: str | None = None
        self.closed: list[Any] = []
        self.store = None
        self.rooms: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def path_of(self, file_id: str) -> str | None:
        return self.path

    def file_lock(self, file_id: str) -> asyncio.Lock:
        return self._locks.setdefault(file_id, asyncio.Lock())

    async def close_deleted(self, room: Any) -> None:
        self.closed.append(room)


class Contents:
    def __init__(self) -> None:
        self.files: set[str] = set()

    def file_exists(self, path: str) -> bool:
        return path in self.files

    def get(self, path: str, content: bool) -> dict[str, Any]:
        return {"last_modified": "then", "size": 1}


class Room:
    """What a check reads of a room: its file id, document, stamp and autosave lock."""

    def __init__(self) -> None:
        self.key = SimpleNamespace(file_id="id-1")
        self.doc = YNotebook()
        self.file_stamp = stamp_of(Contents().get("", content=False))
        self.autosaver = SimpleNamespace(lock=asyncio.Lock())


async def test_a_file_missing_once_is_not_taken_for_deleted() -> None:
    """A rename: the file has moved before jupyter-server-fileid's event handler has
    told the id its new path."""
    manager, contents, room = Manager(), Contents(), Room()
    watcher = FileWatcher(manager, contents, interval=1.0)  # type: ignore[arg-type]
    manager.path = "old.ipynb"
    await watcher.check(room)  # type: ignore[arg-type]
    assert manager.closed == []
    manager.path = None  # the id knows no path for a moment
    await watcher.check(room)  # type: ignore[arg-type]
    assert manager.closed == [room]


async def test_a_file_that_shows_up_again_resets_the_count() -> None:
    manager, contents, room = Manager(), Contents(), Room()
    watcher = FileWatcher(manager, contents, interval=1.0)  # type: ignore[arg-type]
    manager.path = "old.ipynb"
    await watcher.check(room)  # type: ignore[arg-type]
    manager.path = "new.ipynb"
    contents.files.add("new.ipynb")
    await watcher.check(room)  # type: ignore[arg-type]
    assert room.doc.path == "new.ipynb"  # found: a rename
    manager.path = "gone.ipynb"
    await watcher.check(room)  # type: ignore[arg-type]
    assert manager.closed == []  # one miss since the file was last seen


async def test_a_room_closed_while_its_file_was_missing_is_forgotten() -> None:
    """The watcher holds no room that has closed (a room holds its whole document)."""
    manager, contents, room = Manager(), Contents(), Room()
    watcher = FileWatcher(manager, contents, interval=1.0)  # type: ignore[arg-type]
    manager.rooms = {"room": room}
    manager.path = "old.ipynb"
    await watcher.check_all()
    assert watcher._missing == {room}
    manager.rooms = {}  # closed: its last client left
    await watcher.check_all()
    assert watcher._missing == set()
    assert manager.closed == []
