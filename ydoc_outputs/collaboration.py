"""jupyter-server-ydoc's server-side Python API, served by our rooms.

Extensions built on jupyter-collaboration reach its server through
``serverapp.web_app.settings["jupyter_server_ydoc"]``: ``get_document(...)`` (jupyterlab-chat,
jupyter-ai's personas and notebook tools), ``ywebsocket_server.get_room / room_exists``,
and the extension's traits. They also check that an extension named
``jupyter_server_ydoc`` is enabled before they use it (jupyterlab-chat's RTC detection).
Both are answered here, from the same rooms that browsers and the kernel write to.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from jupyter_server.extension.manager import ExtensionPackage
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Awareness, Doc
from tornado.web import HTTPError

from .rooms.manager import RoomError, RoomManager
from .rooms.room import DocumentRoom
from .rooms.transient import TransientRoom, is_document_room_name
from .store.documents import TEXT_FILE, parse_room_name

if TYPE_CHECKING:
    from .app import YdocOutputsApp

__all__ = [
    "PROVIDED_EXTENSION",
    "CollaborationAPI",
    "DocumentsRoomsView",
    "RoomNotFound",
    "RoomsView",
    "stand_in_for_jupyter_server_ydoc",
]

#: The extension whose API and routes this one provides.
PROVIDED_EXTENSION = "jupyter_server_ydoc"

log = logging.getLogger(__name__)


class RoomNotFound(LookupError):
    """No open room of that name (jupyter-server-ydoc raises its own class of this name)."""


class RoomsView:
    """What extensions reach as ``ywebsocket_server``: the open rooms, by name.

    A document room offers jupyter-server-ydoc's attribute names: ``room_id``, ``ydoc``,
    ``_document`` (its jupyter_ydoc view), ``file_format``, ``file_type``.
    """

    def __init__(self, manager: RoomManager) -> None:
        self._manager = manager
        #: Set: the rooms are served (jupyter-server-ydoc starts its server lazily).
        self.started = asyncio.Event()
        self.started.set()

    @property
    def rooms(self) -> dict[str, DocumentRoom | TransientRoom]:
        """A snapshot of the open rooms."""
        return {**self._manager.rooms, **self._manager.transient}

    def room_exists(self, path: str) -> bool:
        """Whether the room ``path`` (a room name) is open."""
        return path in self._manager.rooms or path in self._manager.transient

    async def get_room(self, path: str) -> DocumentRoom | TransientRoom:
        """The open room ``path`` (a room name).

        Raises:
            RoomNotFound: it is not open.
        """
        room = self._manager.room(path) or self._manager.transient.get(path)
        if room is None:
            raise RoomNotFound(path)
        return room

    async def delete_room(
        self, *, name: str | None = None, room: DocumentRoom | TransientRoom | None = None
    ) -> None:
        """Close a transient room (a fork); a file's room closes when it is no longer
        used, after saving, never on request."""
        if name is None and room is not None:
            name = room.name
        if name is not None and name in self._manager.transient:
            await self._manager.remove_transient(name)

    async def start(self) -> None:
        """Nothing to start: the rooms are served by the server's own handlers."""

    async def stop(self) -> None:
        """Nothing to stop here: the rooms close with the server."""


class DocumentsRoomsView:
    """``settings["yroom_manager"]``: the room lookups of jupyter_server_documents, the
    other collaboration server, which tools choose whenever that package can be imported,
    enabled or not (jupyter-ai-tools 0.7; jupyter-ai 3.0 and 3.1 install it). Set only
    where it can be imported; ydoc_outputs disables it and serves its rooms."""

    def __init__(self, manager: RoomManager) -> None:
        self._manager = manager

    def has_room(self, room_id: str) -> bool:
        return room_id in self._manager.rooms or room_id in self._manager.transient

    def get_room(self, room_id: str) -> DocumentsRoomView | None:
        room = self._manager.room(room_id) or self._manager.transient.get(room_id)
        return DocumentsRoomView(room) if room is not None else None


class DocumentsRoomView:
    """A room as jupyter_server_documents' ``YRoom`` offers it to tools."""

    def __init__(self, room: DocumentRoom | TransientRoom) -> None:
        self._room = room
        self.room_id = room.name

    async def get_jupyter_ydoc(self) -> YBaseDoc | None:
        room = self._room
        return room.doc if isinstance(room, DocumentRoom) else room.document

    def get_awareness(self) -> Awareness:
        return self._room.awareness


class CollaborationAPI:
    """``settings["jupyter_server_ydoc"]``: the attributes and methods of
    jupyter-server-ydoc's ``YDocExtension`` that extensions use."""

    name = PROVIDED_EXTENSION

    def __init__(self, app: YdocOutputsApp) -> None:
        self._app = app
        self.serverapp = app.serverapp
        self.log = app.log
        self.ywebsocket_server = RoomsView(app.room_manager)

    # The traits of YDocExtension, read from ours.
    @property
    def disable_rtc(self) -> bool:
        return False

    @property
    def server_side_execution(self) -> bool:
        return True

    @property
    def document_cleanup_delay(self) -> float:
        return self._app.room_cleanup_delay

    @property
    def document_save_delay(self) -> float:
        return self._app.autosave_delay

    @property
    def file_poll_interval(self) -> float:
        return self._app.file_poll_interval

    async def get_document(
        self,
        *,
        path: str | None = None,
        content_type: str | None = None,
        file_format: str | None = None,
        room_id: str | None = None,
        copy: bool = True,
        create: bool = False,
    ) -> YBaseDoc | None:
        """The shared document of a room, named by ``room_id`` or by ``path``,
        ``content_type`` and ``file_format``.

        Args:
            copy: Return an independent copy of the document as it is now (True), or
                the room's live document (False): changes made to it reach every client
                and the file, and the kernel's output shows in it as it arrives.
            create: Open the room if it is not open (loading the file). A room that no
                client joins closes, saved, ``room_cleanup_delay`` seconds later, as
                rooms do when their last client leaves.

        Returns:
            The document, or None if the room is not open and ``create`` is False (or
            the file does not exist).

        Raises:
            ValueError: neither a room id nor all of path, content type and format (or
                both), or a room id that names no document type this server serves.
        """
        manager = self._app.room_manager
        if room_id is None:
            if path is None or content_type is None or file_format is None:
                raise ValueError(
                    "You need to provide either a ``room_id`` or the ``path``, "
                    "the ``content_type`` and the ``file_format``."
                )
            file_id = self._app.settings["file_id_manager"].index(path)
            if file_id is None:
                return None
            room_id = f"{file_format}:{content_type}:{file_id}"
        elif path is not None or content_type is not None or file_format is not None:
            raise ValueError("Give either a room_id or a path, content type and format, not both.")

        room: DocumentRoom | TransientRoom | None
        if is_document_room_name(room_id):
            if parse_room_name(room_id) is None:
                raise ValueError(f"not a document room this server serves: {room_id!r}")
            room = manager.room(room_id)
            if room is None and (create or manager.is_opening(room_id)):
                try:
                    room = await manager.get_room(room_id)
                except RoomError as e:
                    if e.status == 404:
                        return None
                    raise HTTPError(e.status, e.message) from e
                manager.maybe_clean_up(room)
        else:
            room = manager.transient.get(room_id)
        if room is None:
            return None
        if isinstance(room, DocumentRoom):
            document: YBaseDoc | None = room.doc
            ydoc = room.doc.ydoc
        else:
            document, ydoc = room.document, room.ydoc
        if not copy:
            return document
        fork: Doc[Any] = Doc()
        fork.apply_update(ydoc.get_update())
        cls = type(document) if document is not None else TEXT_FILE.document_class
        return cls(fork)

    async def stop_extension(self) -> None:
        """Save and close every room (the server also does so when it stops)."""
        await self._app.stop_extension()


def stand_in_for_jupyter_server_ydoc(serverapp: Any) -> None:
    """Make the server's extension manager list ``jupyter_server_ydoc`` as enabled,
    with nothing of it loaded.

    Extensions find out whether collaboration is on by asking for that extension by name
    (jupyterlab-chat 0.25's ``rtc_lib``: enabled extensions named ``jupyter_server_ydoc``
    or ``jupyter_server_documents``), and otherwise fall back to a websocket of their
    own. The stand-in has no extension points: the real package, if installed, is never
    loaded, whatever the configuration says. Called when this extension is linked, which
    is before any extension is loaded.
    """
    manager = getattr(serverapp, "extension_manager", None)
    if manager is None:
        return
    existing = manager.extensions.get(PROVIDED_EXTENSION)
    if (
        existing is not None
        and existing.enabled
        and manager.linked_extensions.get(PROVIDED_EXTENSION)
    ):
        log.error(
            "jupyter_server_ydoc was enabled and linked before ydoc_outputs: it is not "
            "loaded; ydoc_outputs serves its routes and API"
        )
    stand_in = ExtensionPackage(name=PROVIDED_EXTENSION, enabled=False)
    stand_in.enabled = True  # no metadata loaded: no points to link, load or start
    stand_in.version = "provided by ydoc_outputs"
    manager.extensions[PROVIDED_EXTENSION] = stand_in
