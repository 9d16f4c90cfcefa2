"""HTTP side of the rooms: the collaboration session endpoint and the room websocket.

Both speak the contract of jupyter-server-ydoc, which the stock JupyterLab
collaboration frontend (jupyter-docprovider) expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from pycrdt import Encoder
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..store.autosave import SaveDeferred
from ..store.documents import parse_room_name
from .channel import WebsocketChannel, close_reason
from .limits import TokenBucket, WebsocketLimits
from .manager import RoomError, RoomManager
from .protocol import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_RELOAD,
    CLOSE_SERVER_ERROR,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY,
    RAW_MESSAGE,
    FrameError,
    FrameReader,
    MessageKind,
    check_message,
)
from .room import DocumentRoom
from .transient import GLOBAL_AWARENESS, TransientRoom, is_document_room_name

if TYPE_CHECKING:
    from ..app import YdocOutputsApp

__all__ = ["RoomWebsocketHandler"]

log = logging.getLogger(__name__)


class CollaborationHandler(JupyterHandler):
    """Typed access to what the extension put in the Tornado settings."""

    auth_resource = "contents"

    @property
    def room_manager(self) -> RoomManager:
        manager: RoomManager = self.settings["ydoc_outputs"].room_manager
        return manager


def _is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is (or only groups) a Rust panic of pycrdt.

    pyo3's ``PanicException`` derives from ``BaseException``, so the room's
    ``except Exception`` does not catch it; some malformed updates trigger one.
    """
    group: Any = getattr(exc, "exceptions", None)  # a BaseExceptionGroup (3.11+ or anyio's)
    if isinstance(group, tuple) and group:
        return all(isinstance(e, BaseException) and _is_panic(e) for e in group)
    return type(exc).__name__ == "PanicException"


class RoomWebsocketHandler(WebSocketMixin, WebSocketHandler, CollaborationHandler):
    """``GET api/collaboration/room/{room}``: y-websocket sync of one document.

    Every message is checked (:func:`check_message`) and rate-limited
    (:class:`WebsocketLimits`) before the room sees it; a client that breaks the rules is
    closed with a code, and the other clients of the room notice nothing.
    """

    _channel: WebsocketChannel | None = None
    _room: DocumentRoom | TransientRoom | None = None
    _joined: str | None = None
    _serving: asyncio.Task[None] | None = None

    def initialize(self) -> None:
        self._raw_tasks: set[asyncio.Future[None]] = set()
        self._limits: WebsocketLimits = self.extension.websocket_limits
        self._awareness = TokenBucket(self._limits.awareness_rate, self._limits.awareness_burst)
        self._requests = TokenBucket(self._limits.request_rate, self._limits.request_burst)

    @property
    def extension(self) -> YdocOutputsApp:
        app: YdocOutputsApp = self.settings["ydoc_outputs"]
        return app

    @property
    def max_message_size(self) -> int:
        """Tornado closes the connection with 1009 on a larger frame, before reading it."""
        return self._limits.max_message_bytes

    def get_compression_options(self) -> None:
        """No permessage-deflate: the channel writes the frames itself, each message the
        one object shared by every client of the room (compressed, it would be one copy
        per client, and one compression per client and message)."""
        return None

    def set_default_headers(self) -> None:
        """Undo JupyterHandler's headers, which make no sense for websockets."""

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "write", "contents")):
            raise web.HTTPError(403)
        # Refused before the upgrade: y-websocket backs off after a connection that never
        # opened (0.2 s, doubling to 2.5 s), but reconnects within 0.1 s of one that
        # opened and was closed, whatever the code, so a 4429 close would make it spin.
        username = getattr(user, "username", None) or str(user)
        connections = self.extension.websocket_connections
        if not connections.open(username):
            log.warning(
                "refused a room websocket of %s: %d open, websocket_max_connections_per_user",
                username,
                connections.count(username),
            )
            raise web.HTTPError(429, "too many room websockets open for this user")
        try:
            await super().get(*args, **kwargs)  # returns once the connection is closed
        finally:
            connections.close(username)

    async def open(self, room_name: str) -> None:
        super().open()  # keep-alive pings
        # A small message right after a large one (the changes that follow a sync step 2,
        # a line of output after a big one) waited, under Nagle's algorithm, for the
        # client's delayed ACK of the large one: 40 ms on Linux.
        self.set_nodelay(True)
        session_id = self.get_query_argument("sessionId", None)
        manager = self.room_manager
        document = is_document_room_name(room_name)
        if document and parse_room_name(room_name) is None:
            name = close_reason(f"not a document type this server knows: {room_name}")
            self.close(CLOSE_BAD_REQUEST, name)
            return
        if document and session_id is not None and not await manager.accepts_session(session_id):
            # The client holds a document from another server process: merging it
            # could duplicate cells, so it must reload (the frontend offers a dialog).
            reason = {"reason": "unknown_session", "sessionId": manager.session_id}
            self.close(CLOSE_RELOAD, json.dumps({**reason, "reloadable": True}))
            return
        try:
            room = await manager.get_any_room(room_name)
        except RoomError as e:
            code = CLOSE_NOT_FOUND if e.status == 404 else CLOSE_BAD_REQUEST
            self.close(code, close_reason(e.message))
            return
        except Exception:
            log.exception("cannot open room %s", room_name)
            self.close(CLOSE_SERVER_ERROR, "cannot open the document")
            return
        if document and isinstance(room, DocumentRoom):
            refusal = await manager.refusal_to_join(room)
            if refusal is not None:
                manager.maybe_clean_up(room)
                self.close(CLOSE_BAD_REQUEST, close_reason(refusal))
                return
        if self.ws_connection is None or self.ws_connection.is_closing():
            manager.maybe_clean_up(room)
            return
        self._room = room
        self._channel = WebsocketChannel(
            self,
            room_name,
            max_pending_bytes=self._limits.max_pending_bytes,
            admit=room.admit,
            budget=self.extension.websocket_budget,
        )
        self._serving = asyncio.ensure_future(self._serve(room, self._channel))
        self._announce(room, "join")

    def _announce(self, room: DocumentRoom | TransientRoom, action: str) -> None:
        """jupyter-server-ydoc's events of a client joining or leaving ``room``."""
        events = self.room_manager.events
        if events is None:
            return
        if action == "join" and isinstance(room, DocumentRoom):
            events.session(room.name, "initialize", "New client connected.")
        if room.name == GLOBAL_AWARENESS:
            return
        user = self.current_user
        username = getattr(user, "username", None) or str(user)
        if action == "join":
            self._joined = username
        elif self._joined is None:
            return
        events.awareness(room.name, username, action)

    async def _serve(self, room: DocumentRoom | TransientRoom, channel: WebsocketChannel) -> None:
        try:
            await room.serve(channel)
        except Exception:
            log.exception("error while serving %s", room.name)
            channel.close(CLOSE_SERVER_ERROR, "server error")
        except BaseException as e:
            if not _is_panic(e):
                raise
            # A panic on a client's message: that client's fault, not the server's.
            while isinstance(getattr(e, "exceptions", None), tuple):
                e = e.exceptions[0]  # type: ignore[attr-defined]
            log.warning("closing a client of %s: pycrdt panicked on its message: %s", room.name, e)
            channel.close(CLOSE_BAD_REQUEST, "malformed message")
        finally:
            channel.end(drop=True)
            channel.stop_sending()
            self._announce(room, "leave")
            self.room_manager.maybe_clean_up(room)

    def _refuse(self, code: int, reason: str) -> None:
        """Close this client for what it sent."""
        room = self._room.name if self._room is not None else "?"
        # Malformed input is the client's bug, worth a line at info level; hitting a
        # resource limit is rarer and something an operator may want to tune.
        level = logging.INFO if code == CLOSE_BAD_REQUEST else logging.WARNING
        log.log(level, "closing a client of %s (%d): %s", room, code, reason)
        if self._channel is not None:
            self._channel.close(code, reason)
        else:
            self.close(code, reason)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # Not a coroutine: Tornado makes a task of each awaitable on_message returns and
        # reads the next frame once it is done, a pass of the event loop or two per
        # message. A page's messages then reached the room at the pace of everything
        # else the loop did: a Run All's [*] marks, sent before their execute requests,
        # fell behind them, and a mark applied after its cell had run showed it running
        # again. Frames already received are now handed to the room at once.
        try:
            return self._on_message(message)
        except Exception:
            self._failed()
            return None

    def _failed(self) -> None:
        # An exception would escape Tornado's read loop, unlogged until collected.
        log.exception("error while handling a message for %s", self._channel and self._channel.path)
        self._refuse(CLOSE_SERVER_ERROR, "server error")

    async def _put_when_room(self, channel: WebsocketChannel, message: bytes) -> None:
        try:
            await channel.put(message)
        except Exception:
            self._failed()

    def _on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # Tornado reads the next frame only once the awaitable returned is done: waiting
        # for room in the channel's queue pushes a flood back onto the sender's socket.
        channel = self._channel
        if channel is None or channel.ended:
            return None
        if isinstance(message, str):
            self._refuse(CLOSE_BAD_REQUEST, "expected a binary y-websocket message")
            return None
        try:
            kind = check_message(message)
        except FrameError as e:
            self._refuse(CLOSE_BAD_REQUEST, f"malformed message: {e}")
            return None
        if kind is MessageKind.AWARENESS:
            # Echoed to every client of the room: a flood costs the server N times.
            if len(message) > self._limits.max_awareness_bytes:
                self._refuse(CLOSE_TOO_BIG, "awareness message too big")
                return None
            if not self._awareness.take():
                self._refuse(CLOSE_TOO_MANY, "too many awareness messages")
                return None
        elif kind in (MessageKind.SYNC_REQUEST, MessageKind.SAVE) and not self._requests.take():
            # Each one costs a whole-document encoding or a save.
            self._refuse(CLOSE_TOO_MANY, "too many sync or save requests")
            return None
        if kind is MessageKind.OTHER:
            return None
        if kind is MessageKind.SAVE:
            task = asyncio.ensure_future(self._on_raw(message))
            self._raw_tasks.add(task)
            task.add_done_callback(self._raw_tasks.discard)
            return None
        if channel.put_nowait(message):
            return None
        return self._put_when_room(channel, message)

    def on_close(self) -> None:
        if self._channel is not None:
            self._channel.end(drop=False)
            self._channel.stop_sending()

    async def _on_raw(self, message: bytes) -> None:
        """Answer a save request (Ctrl+S): ``varString "save"`` then ``varUint id``."""
        reader = FrameReader(message, 1)
        action = reader.var_string()
        save_id = reader.var_uint()  # checked by check_message: cannot raise
        if action != "save" or self._room is None:
            return
        if isinstance(self._room, TransientRoom):
            await self._reply_save(save_id, "skipped")  # nothing to save
            return
        try:
            await self._room.autosaver.save_now()
            status = "success"
        except SaveDeferred:
            status = "failed"  # the reason is logged already
        except Exception:
            log.exception("saving %s failed", self._room.name)
            status = "failed"
        await self._reply_save(save_id, status)

    async def _reply_save(self, save_id: int, status: str) -> None:
        reply = {"type": "save", "responseTo": save_id, "status": status}
        encoder = Encoder()
        encoder.write_var_uint(RAW_MESSAGE)
        encoder.write_var_string(json.dumps(reply))
        with contextlib.suppress(WebSocketClosedError):
            await self.write_message(encoder.to_bytes(), binary=True)
