"""Open, share and close notebook rooms.

A room lives while a client is connected to it or while its kernel has queued or
running cells of it; only then, after ``cleanup_delay`` seconds, is it saved and closed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

from ..outputs.reducer import OutputLimits
from ..store.documents import RoomKey, parse_room_name, read_file
from ..store.ystore import UpdateStore
from .events import CollaborationEvents
from .room import DocumentRoom, NotebookRoom
from .sync import AWARENESS_INTERVAL, CACHE_BYTES, AnswerCache
from .transient import TransientRoom, is_document_room_name
from .watcher import CLOSE_FILE_DELETED, FileMissing, FileUnreadable, FileWatcher

__all__ = ["ROOM_PREFIX", "RoomError", "RoomManager"]

#: Prefix of a notebook's room name, which is also its ``document_id``.
ROOM_PREFIX = "json:notebook:"

log = logging.getLogger(__name__)


class RoomError(Exception):
    """A room cannot be opened; ``status`` is the HTTP-like status to report."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RoomManager:
    """Owns every open room of this server process."""

    def __init__(
        self,
        contents_manager: Any,
        file_id_manager: Callable[[], Any],
        *,
        cleanup_delay: float,
        autosave_delay: float,
        limits: OutputLimits,
        store: UpdateStore | None = None,
        squash_after: float | None = None,
        file_poll_interval: float = 1.0,
        spill_root: Path | None = None,
        output_url: Callable[[str, str], str] | None = None,
        sync_cache_bytes: int = CACHE_BYTES,
        record_timing: bool = False,
        awareness_interval: float = AWARENESS_INTERVAL,
        events: CollaborationEvents | None = None,
    ) -> None:
        self._contents = contents_manager
        self._file_ids = file_id_manager
        self.cleanup_delay = cleanup_delay
        self.autosave_delay = autosave_delay
        self.limits = limits
        #: One id per server process; a client that holds another one must reload.
        self.session_id = str(uuid.uuid4())
        self.rooms: dict[str, DocumentRoom] = {}
        #: Rooms with no file: awareness rooms and forks, by name.
        self.transient: dict[str, TransientRoom] = {}
        #: jupyter-server-ydoc's jupyter events (None: not emitted).
        self.events = events
        self._opening: dict[str, asyncio.Future[DocumentRoom]] = {}
        self._cleanups: dict[str, asyncio.TimerHandle] = {}
        #: One lock per file saved by this process (a few hundred bytes each): its rooms
        #: write it one at a time.
        self._save_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        #: Y updates of every room, so that rooms survive a server restart or crash.
        self.store = store
        self.squash_after = squash_after
        self._store_started: asyncio.Future[None] | None = None
        self.watcher = FileWatcher(self, contents_manager, file_poll_interval)
        #: Where truncated cells spill their middle output, and the URL that serves it.
        self.spill_root = spill_root
        self.output_url = output_url
        #: Whether runs record ``metadata.execution`` (JupyterLab's recordTiming).
        self.record_timing = record_timing
        #: Told when a client changed a notebook's cells beyond their text (a page marks
        #: the cells it runs so): the execution service checks for marks left behind.
        self.on_cells_changed: Callable[[NotebookRoom], None] | None = None
        #: The whole-document answers to fresh clients that the rooms keep, in one budget.
        self.answers = AnswerCache(sync_cache_bytes)
        #: Seconds between two awareness updates to a room's clients.
        self.awareness_interval = awareness_interval

    async def start_store(self) -> None:
        """Open the update store (once) and record this process's session id in it."""
        if self.store is None:
            return
        if self._store_started is None:
            self._store_started = asyncio.ensure_future(self._start_store(self.store))
        await asyncio.shield(self._store_started)

    async def _start_store(self, store: UpdateStore) -> None:
        await store.start()
        await store.add_session(self.session_id)

    async def accepts_session(self, session_id: str) -> bool:
        """Whether a client that got ``session_id`` from this server may sync as it is.

        Ids of earlier processes are accepted when they used the same update store:
        rooms are rebuilt from it, so the client's copy shares their Y history and
        merging it duplicates nothing.
        """
        if session_id == self.session_id:
            return True
        if self.store is None:
            return False
        await self.start_store()
        return await self.store.known_session(session_id)

    @staticmethod
    def parse(name: str) -> RoomKey:
        """Parse a room name ``{format}:{type}:{file_id}``; RoomError(400) if not served."""
        key = parse_room_name(name)
        if key is None:
            raise RoomError(400, f"not the name of a document room of a served kind: {name!r}")
        return key

    async def refusal_to_join(self, room: DocumentRoom) -> str | None:
        """Why a client may not join ``room`` now, or None.

        The file may have changed, since the watcher last looked, into something the
        room's kind cannot load (a notebook written over a chat's file): the room then
        keeps its document and saves nothing, and a room opened now would be refused.
        A client joining it is refused too, rather than shown a document that is not
        the file's. The file is brought up to date first, as the watcher would.
        """
        path = self.path_of(room.key.file_id)
        if path is None:
            return None
        try:
            async with room.autosaver.lock, self.file_lock(room.key.file_id):
                await self.watcher.sync_from_disk(room, path)
        except FileUnreadable:
            return f"{path} changed into something {room.name} cannot load"
        except FileMissing:
            return None
        except Exception:
            log.exception("could not check the file of %s", room.name)
        return None

    def path_of(self, file_id: str) -> str | None:
        path: str | None = self._file_ids().get_path(file_id)
        return path

    async def stored_history(self, name: str) -> list[tuple[bytes, float]]:
        """The stored updates of the room ``name`` and when each was stored, oldest
        first; the open room's pending updates are stored first."""
        if self.store is None:
            return []
        room = self.rooms.get(name)
        if room is not None and room.persistence is not None:
            await room.persistence.flush()
        await self.start_store()
        return await self.store.history(name)

    def is_opening(self, name: str) -> bool:
        """Whether the room ``name`` is being opened (its file is loading)."""
        return name in self._opening

    def room(self, name: str) -> DocumentRoom | None:
        """The open room of that name, if any."""
        return self.rooms.get(name)

    def notebook_room(self, name: str) -> NotebookRoom | None:
        """The open notebook room of that name, if any."""
        room = self.rooms.get(name)
        return room if isinstance(room, NotebookRoom) else None

    async def get_notebook_room(self, name: str) -> NotebookRoom:
        """Like :meth:`get_room`; RoomError(400) if ``name`` is not a notebook's room."""
        if not self.parse(name).kind.is_notebook:
            raise RoomError(400, f"not a notebook: {name!r}")
        room = await self.get_room(name)
        assert isinstance(room, NotebookRoom)
        return room

    async def get_any_room(self, name: str) -> DocumentRoom | TransientRoom:
        """The room ``name``: a file's room (see :meth:`get_room`), or a transient
        room, which a name without two colons names (opened if needed)."""
        if is_document_room_name(name):
            return await self.get_room(name)
        room = self.transient.get(name)
        if room is None:
            room = self.transient[name] = TransientRoom(
                name, awareness_interval=self.awareness_interval
            )
        return room

    def add_transient(self, room: TransientRoom) -> None:
        """Serve ``room`` (a fork) under its name."""
        self.transient[room.name] = room

    async def remove_transient(self, name: str) -> TransientRoom | None:
        """Stop and forget the transient room ``name`` (its clients are closed)."""
        room = self.transient.pop(name, None)
        if room is not None:
            room.close_clients(1000, "the room was deleted")
            await room.stop()
        return room

    async def get_room(self, name: str) -> DocumentRoom:
        """Return the open room ``name``, opening it from disk if needed."""
        room = self.rooms.get(name)
        if room is not None:
            self._cancel_cleanup(name)
            return room
        opening = self._opening.get(name)
        if opening is None:
            opening = asyncio.ensure_future(self._open(name))
            self._opening[name] = opening
            opening.add_done_callback(lambda _f: self._opening.pop(name, None))
        return await asyncio.shield(opening)

    async def _open(self, name: str) -> DocumentRoom:
        key = self.parse(name)
        path = self.path_of(key.file_id)
        if path is None:
            raise RoomError(404, f"no file with id {key.file_id!r}")
        kind = key.kind
        try:
            # Not while another room of the file saves it: the contents manager rewrites
            # a file in place, and a read in between found it empty or cut (a chat room
            # then opened on a notebook being saved; found by tests/test_model.py).
            async with self.file_lock(key.file_id):
                model = await read_file(
                    self._contents, path, content=True, type=kind.contents_type,
                    format=kind.format, require_hash=True,
                )  # fmt: skip
        except HTTPError as e:
            status = 404 if e.status_code == 404 else 400
            raise RoomError(status, f"cannot open {path!r}: {e.log_message}") from e
        refusal = kind.refusal(model["content"])
        if refusal is not None:
            raise RoomError(400, f"cannot open {path!r} as {kind.format}:{kind.type}: {refusal}")
        file_hash: str | None = model.get("hash")
        store = self.store
        disk_is_ours = False
        if store is not None:
            await self.start_store()
            disk_is_ours = file_hash is not None and await store.saved(name) == file_hash
        options: dict[str, Any] = {
            "autosave_delay": self.autosave_delay,
            "store": store,
            "squash_after": self.squash_after,
            "answers": self.answers,
            "awareness_interval": self.awareness_interval,
        }
        room: DocumentRoom
        if kind.is_notebook:
            room = NotebookRoom(
                key,
                self._save,
                limits=self.limits,
                spill_root=self.spill_root,
                output_url=self.output_url,
                record_timing=self.record_timing,
                on_cells_changed=self._cells_changed,
                **options,
            )
        else:
            room = DocumentRoom(key, self._save, **options)
        room.saw_file(model)
        await room.start(model["content"], path, disk_is_ours)
        self.watcher.start()
        if store is not None and file_hash is not None:
            # The document now agrees with this file: a later open may trust the store.
            await store.set_saved(name, file_hash)
        self.rooms[name] = room
        log.info("opened room %s for %s", name, path)
        if self.events is not None:
            source = f"the store {type(store).__name__}" if room.restored else "disk"
            self.events.session(name, "load", f"Content loaded from {source}.", path=path)
            self.events.session(name, "initialize", "Room initialized", path=path)
        return room

    def _cells_changed(self, room: NotebookRoom) -> None:
        if self.on_cells_changed is not None:
            self.on_cells_changed(room)

    async def _save(self, room: DocumentRoom) -> str | None:
        """Save through the contents manager; return the file's new hash.

        A file that another program changed since is reloaded instead, not overwritten.
        The rooms of one file (a notebook and its text view) save one at a time: the
        contents manager rewrites a file in place, from a thread, so two saves at once
        could leave the longer one's tail after the shorter one; and the second finds
        the first's write on disk, and reloads it.
        """
        async with self.file_lock(room.key.file_id):
            return await self._save_file(room)

    def file_lock(self, file_id: str) -> asyncio.Lock:
        """Held while a room writes the file, or reads it to open or to reload."""
        return self._save_locks.setdefault(file_id, asyncio.Lock())

    def hold_renames_for_saves(self) -> None:
        """Make the contents manager's renames of a file wait for its save under way.

        A rename between a save's look at the file and its write made the save write the
        file again under its old name (jupyter-server-fileid learns of a rename only
        after it): found by tests/test_model.py. A save after the rename finds nothing at
        the old path and waits for the next change (``FileMissing``). Only an async
        contents manager (jupyter_server's default) is wrapped: a sync one calls
        ``rename`` without awaiting it. Renames of a directory holding the file are not
        held.
        """
        original = self._contents.rename
        if not inspect.iscoroutinefunction(original):
            log.info("the contents manager is not async: renames do not wait for saves")
            return

        async def rename(old_path: str, new_path: str) -> Any:
            file_id = self._file_ids().get_id(old_path.strip("/"))
            if file_id is None:
                return await original(old_path, new_path)
            async with self.file_lock(file_id):
                return await original(old_path, new_path)

        self._contents.rename = rename

    async def _save_file(self, room: DocumentRoom) -> str | None:
        path = self.path_of(room.key.file_id)
        if path is None:
            # Deleted, or replaced by another file (a new inode): the watcher's next
            # check tells which, and closes the room if it is gone.
            raise FileMissing(room.key.file_id)
        if await self.watcher.sync_from_disk(room, path):
            return room.file_hash
        await ensure_async(self._contents.save(room.key.kind.model(room.doc), path))
        try:
            saved = await ensure_async(self._contents.get(path, content=False, require_hash=True))
        except HTTPError as e:
            if e.status_code != 404:
                raise
            raise FileMissing(path) from e  # deleted right after the save
        file_hash: str | None = saved.get("hash")
        room.saw_file(saved)
        if self.store is not None and file_hash is not None:
            await self.store.set_saved(room.name, file_hash)
        if self.events is not None:
            self.events.session(room.name, "save", "Content saved.", path=path)
        return file_hash

    def hold(self, room: DocumentRoom) -> None:
        """Keep ``room`` open: one of its cells is queued or running."""
        room.busy += 1
        self._cancel_cleanup(room.name)

    def release(self, room: DocumentRoom) -> None:
        """One of ``room``'s executions ended."""
        room.busy = max(0, room.busy - 1)
        self.maybe_clean_up(room)

    def maybe_clean_up(self, room: DocumentRoom | TransientRoom) -> None:
        """Schedule closing ``room`` if nobody needs it any more."""
        if isinstance(room, TransientRoom):
            # Nothing to save: an awareness room goes with its last client.
            if not room.clients and not room.pinned and self.transient.get(room.name) is room:
                del self.transient[room.name]
                self._start(room.stop())
            return
        if room.clients or room.busy or room.name in self._cleanups:
            return
        if self.rooms.get(room.name) is not room:
            return
        loop = asyncio.get_running_loop()
        self._cleanups[room.name] = loop.call_later(self.cleanup_delay, self._start_clean_up, room)

    def _cancel_cleanup(self, name: str) -> None:
        handle = self._cleanups.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _start_clean_up(self, room: DocumentRoom) -> None:
        self._start(self._clean_up(room))

    def _start(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _clean_up(self, room: DocumentRoom) -> None:
        self._cleanups.pop(room.name, None)
        if room.clients or room.busy or self.rooms.get(room.name) is not room:
            return
        del self.rooms[room.name]
        log.info("closing room %s", room.name)
        path = self.path_of(room.key.file_id) or ""
        await room.stop()
        if self.events is not None:
            self.events.session(room.name, "clean", "Room deleted.", path=path)
            if not any(r.key.file_id == room.key.file_id for r in self.rooms.values()):
                self.events.session(room.name, "clean", "Loader deleted.", path=path)

    async def close_deleted(self, room: DocumentRoom) -> None:
        """End the room of a deleted file, without saving it back to life."""
        if self.rooms.get(room.name) is not room:
            return
        log.info("the file of %s was deleted: closing the room", room.name)
        del self.rooms[room.name]
        self._cancel_cleanup(room.name)
        room.autosaver.enabled = False
        room.close_clients(CLOSE_FILE_DELETED, "the file was deleted")
        await room.stop()
        if self.store is not None:
            # Every room of the file: its other views are gone with it.
            await self.store.forget_file(room.key.file_id)

    async def stop(self) -> None:
        """Save and close every room (server shutdown)."""
        await self.watcher.stop()
        for name in list(self._cleanups):
            self._cancel_cleanup(name)
        rooms, self.rooms = list(self.rooms.values()), {}
        for room in rooms:
            await room.stop()
        transient, self.transient = list(self.transient.values()), {}
        for other in transient:
            await other.stop()
        if self.store is not None and self._store_started is not None:
            await self.store.stop()
