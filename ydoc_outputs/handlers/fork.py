"""jupyter-collaboration's fork, timeline and undo/redo endpoints (see rooms/forks.py).

- ``GET api/collaboration/fork/{root}``: the forks of a room.
- ``PUT api/collaboration/fork/{root}`` ``{synchronize, title, description}``: fork it (201).
- ``DELETE api/collaboration/fork/{fork}?merge=true|false``: delete a fork, merging it first.
- ``GET api/collaboration/timeline/{path}?format=&type=``: a timeline of the file's room.
- ``PUT api/collaboration/undo_redo/{room}?action=undo|redo|restore&steps=&forkRoom=``.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers.paths import visible_file
from ..rooms.forks import Forks, MergeRefused
from ..rooms.manager import RoomError
from ..rooms.room import DocumentRoom
from ..rooms.transient import is_document_room_name
from ..store.documents import kind_of
from .base import ExtensionAPIHandler

__all__ = ["ForkHandler", "TimelineHandler", "UndoRedoHandler"]

#: Largest body of a fork request (a title and a description).
MAX_FORK_BODY_BYTES = 64 * 1024

#: The most steps one undo/redo request may take.
MAX_STEPS = 10_000


class _ForkAPIHandler(ExtensionAPIHandler):
    auth_resource = "contents"

    @property
    def forks(self) -> Forks:
        forks: Forks = self.extension.forks
        return forks

    def _username(self) -> str:
        user = self.current_user
        return getattr(user, "username", None) or str(user)


class ForkHandler(_ForkAPIHandler):
    @web.authenticated
    @authorized("read")
    def get(self, root: str) -> None:
        self.finish(self.forks.of(root))

    @web.authenticated
    @authorized("write")
    async def put(self, root_name: str) -> None:
        body = self.json_object(MAX_FORK_BODY_BYTES)
        manager = self.extension.room_manager
        root: Any
        if is_document_room_name(root_name):
            try:
                root = await manager.get_room(root_name)
            except RoomError as e:
                raise web.HTTPError(404 if e.status == 404 else 400, e.message) from e
        else:
            root = manager.transient.get(root_name)
            if root is None:
                raise web.HTTPError(404, "Root room not found")
        synchronize = body.get("synchronize", False)
        title, description = body.get("title") or "", body.get("description") or ""
        if not isinstance(synchronize, bool):
            raise web.HTTPError(400, "'synchronize' must be a boolean")
        if not isinstance(title, str) or not isinstance(description, str):
            raise web.HTTPError(400, "'title' and 'description' must be strings")
        name, info = await self.forks.create(root, synchronize, title, description)
        if isinstance(root, DocumentRoom):
            manager.maybe_clean_up(root)
        events = manager.events
        if events is not None:
            events.fork(name, info.as_dict(), self._username(), "create")
        self.set_status(201)
        self.finish(
            {"sessionId": manager.session_id, "fork_roomid": name, "fork_info": info.as_dict()}
        )

    @web.authenticated
    @authorized("write")
    async def delete(self, name: str) -> None:
        merge = self.get_query_argument("merge", "false") == "true"
        try:
            info = await self.forks.delete(name, merge)
        except MergeRefused as e:
            raise web.HTTPError(409, f"the fork cannot be merged: {e}") from e
        if info is None:
            raise web.HTTPError(404, "Fork room not found")
        events = self.extension.room_manager.events
        if events is not None:
            events.fork(name, info.as_dict(), self._username(), "delete")
        self.set_status(200)
        self.finish({})


class TimelineHandler(_ForkAPIHandler):
    @web.authenticated
    @authorized("read")
    async def get(self, path: str) -> None:
        file_format = self.get_query_argument("format", None)
        file_type = self.get_query_argument("type", None)
        if file_format is None or file_type is None:
            raise web.HTTPError(400, "'format' and 'type' query arguments are required")
        if kind_of(file_format, file_type) is None:
            raise web.HTTPError(404, f"No document factory found for content type: {file_type}")
        api_path = await visible_file(self.contents_manager, path)
        file_id = self.settings["file_id_manager"].get_id(api_path)
        manager = self.extension.room_manager
        room = manager.room(f"{file_format}:{file_type}:{file_id}") if file_id else None
        if room is None:
            raise web.HTTPError(404, "Room not found")
        name, timeline = await self.forks.timeline(room)
        self.finish(
            {
                "roomId": room.name,
                "timestamps": timeline.timestamps,
                "forkRoom": name,
                "sessionId": manager.session_id,
            }
        )


class UndoRedoHandler(_ForkAPIHandler):
    @web.authenticated
    @authorized("write")
    async def put(self, room_id: str) -> None:
        action = self.get_query_argument("action", None)
        fork_room = self.get_query_argument("forkRoom", None)
        try:
            steps = int(self.get_query_argument("steps", "1"))
        except ValueError as e:
            raise web.HTTPError(400, "'steps' must be an integer") from e
        if action not in ("undo", "redo", "restore") or fork_room is None:
            raise web.HTTPError(400, "'action' (undo, redo or restore) and 'forkRoom' required")
        if not 0 <= steps <= MAX_STEPS:
            raise web.HTTPError(400, f"'steps' must be between 0 and {MAX_STEPS}")
        timeline = self.forks.timelines.get(fork_room)
        if timeline is None:
            raise web.HTTPError(404, "Fork document not found")
        if action == "restore":
            await self.forks.end_timeline(fork_room)
            self.finish({"code": 200, "status": "Document restored successfully"})
            return
        if not timeline.step(action, steps):
            self.finish({"error": f"No more {action} operations available"})
            return
        self.finish({"status": "undone" if action == "undo" else "redone"})
