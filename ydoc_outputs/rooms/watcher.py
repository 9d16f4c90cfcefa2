"""Watch the files of open rooms: outside changes, renames and deletions.

A file changed by another program (git checkout, an editor) is reloaded into its
room, and connected clients see the change; a rename (tracked by file id) updates the
document's path; a deleted file ends its room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server._tz import utcfromtimestamp
from jupyter_server.services.contents.fileio import FileManagerMixin
from tornado.web import HTTPError

from ..store.autosave import SaveDeferred
from ..store.documents import read_file, stamp_of
from ..ydoc.writer import SERVER_ORIGIN
from .room import DocumentRoom

if TYPE_CHECKING:
    from .manager import RoomManager

__all__ = ["FileMissing", "FileUnreadable", "FileWatcher"]

log = logging.getLogger(__name__)

#: Close code for clients of a room whose file was deleted.
CLOSE_FILE_DELETED = 4404


class FileUnreadable(SaveDeferred):
    """The file changed into something its room cannot read (a notebook that a text
    editor made invalid JSON, on purpose or half-way through an edit)."""


class FileMissing(SaveDeferred):
    """The file left its path between the room's look at it and its reading."""


class FileWatcher:
    """Polls the file of every open room every ``interval`` seconds."""

    def __init__(self, manager: RoomManager, contents: Any, interval: float) -> None:
        self._manager = manager
        self._contents = contents
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        #: Rooms whose file was missing at the last check (a rename in progress looks
        #: like that for a moment: the file has moved, its id does not know it yet).
        self._missing: set[DocumentRoom] = set()

    def start(self) -> None:
        if self._task is None and self._interval > 0:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check_all()

    async def check_all(self) -> None:
        """Check the file of every open room (errors are logged)."""
        rooms = list(self._manager.rooms.values())
        self._missing.intersection_update(rooms)  # forget rooms closed meanwhile
        for room in rooms:
            try:
                await self.check(room)
            except Exception:
                log.exception("could not check the file of %s", room.name)

    async def check(self, room: DocumentRoom) -> None:
        """Bring ``room`` up to date with its file."""
        path = self._manager.path_of(room.key.file_id)
        if path is None or not await ensure_async(self._contents.file_exists(path)):
            # Deleted only if still missing at the next check: jupyter-server-fileid
            # learns of a rename from an event handled after the file has moved.
            if room in self._missing:
                self._missing.discard(room)
                await self._manager.close_deleted(room)
            else:
                self._missing.add(room)
            return
        self._missing.discard(room)
        if room.doc.path != path:
            with room.doc.ydoc.transaction(origin=SERVER_ORIGIN):
                room.doc.path = path
        if room.autosaver.lock.locked():
            return  # a save is being written; it checks the file itself first
        # The file's lock too: a save of another room of the file (a notebook and its
        # text view) rewrites it in place, and a read meanwhile finds it empty or cut.
        async with room.autosaver.lock, self._manager.file_lock(room.key.file_id):
            # Unreadable: logged once, when first seen. Missing: the next check tells.
            with contextlib.suppress(FileUnreadable, FileMissing):
                await self.sync_from_disk(room, path)

    async def sync_from_disk(self, room: DocumentRoom, path: str) -> bool:
        """Reload the file into ``room`` if another program changed it; True if it did.

        The caller holds the room's autosave lock.

        Raises:
            FileUnreadable: the file changed into something the room cannot load. The
                room keeps its document and must not save over the file: another view
                of it (a text editor) wrote it.
            FileMissing: the file is not at ``path`` any more (renamed or deleted a
                moment ago: the next check of the watcher tells which).
        """
        # A stat first: hashing reads the whole file, and this runs every `interval`
        # seconds for every open room, and before every save.
        stamp = self._stat(path)
        if stamp is None:
            stamp = stamp_of(await self._get(path, content=False))
        if room.file_stamp is not None and stamp == room.file_stamp:
            return False
        if stamp is not None and stamp == room.unreadable_stamp:
            raise FileUnreadable(path)
        model = await self._get(path, content=False, require_hash=True)
        if model.get("hash") in (None, room.file_hash):
            room.file_stamp = stamp_of(model)  # touched, not changed
            return False
        kind = room.key.kind
        try:
            model = await self._get(
                path, content=True, type=kind.contents_type, format=kind.format, require_hash=True
            )
        except HTTPError as e:
            if e.status_code != 400:
                raise
            room.unreadable_stamp = stamp
            log.warning(
                "%s changed into something %s cannot load (%s): the room keeps its document "
                "and does not save over the file until it can be loaded again",
                path, room.name, e.log_message,
            )  # fmt: skip
            raise FileUnreadable(path) from e
        refusal = kind.refusal(model["content"])
        if refusal is not None:
            room.unreadable_stamp = stamp
            log.warning(
                "%s changed into something %s cannot load (%s): the room keeps its document "
                "and does not save over the file until it can be loaded again",
                path, room.name, refusal,
            )  # fmt: skip
            raise FileUnreadable(path)
        log.info("%s changed on disk: reloading it into %s", path, room.name)
        if self._manager.events is not None:
            self._manager.events.session(
                room.name, "overwrite", "Out-of-band changes. Overwriting the room.", path=path
            )
        kind.load(room.doc, model["content"])
        room.saw_file(model)
        if self._manager.store is not None and room.file_hash is not None:
            await self._manager.store.set_saved(room.name, room.file_hash)
        return True

    def _stat(self, path: str) -> tuple[Any, Any] | None:
        """The file's modification time and size as its contents model gives them, read
        from the file system where the contents manager keeps files there (jupyter_server's
        file managers); None otherwise.

        Not through ``contents_manager.get``: jupyter_server emits a ``contents_service``
        event for each ``get``, which goes to every page subscribed to events, so a check
        per second and room cost every open page a message per second and room.

        Raises:
            FileMissing: there is no file at ``path``.
        """
        if not isinstance(self._contents, FileManagerMixin):
            return None
        try:
            info = os.lstat(self._contents._get_os_path(path))
        except FileNotFoundError as e:
            raise FileMissing(path) from e
        except (OSError, HTTPError):
            return None  # the contents manager says why, if it matters
        return utcfromtimestamp(info.st_mtime), info.st_size

    async def _get(self, path: str, **options: Any) -> dict[str, Any]:
        try:
            model = await read_file(self._contents, path, **options)
        except HTTPError as e:
            if e.status_code == 404:
                log.info("%s is gone from its path: not saved now", path)
                raise FileMissing(path) from e
            raise
        return model
