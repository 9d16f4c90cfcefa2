"""HTTP side of the rooms: the collaboration session endpoint and the room websocket.

Both speak the contract of jupyter-server-ydoc, which the stock JupyterLab
collaboration frontend (jupyter-docprovider) expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from pycrdt import Decoder, Encoder
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..store.documents import KINDS, parse_room_name
from .manager import RoomError, RoomManager
from .room import DocumentRoom

__all__ = ["RoomWebsocketHandler", "SessionHandler", "WebsocketChannel"]

log = logging.getLogger(__name__)

#: y-websocket message type carrying save requests and their replies.
RAW_MESSAGE = 2

# Websocket close codes (see DESIGN.md, wire contract).
CLOSE_RELOAD = 1003
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_SERVER_ERROR = 4500


class CollaborationHandler(JupyterHandler):
    """Typed access to what the extension put in the Tornado settings."""

    auth_resource = "contents"

    @property
    def room_manager(self) -> RoomManager:
        manager: RoomManager = self.settings["ydoc_outputs"].room_manager
        return manager


class SessionHandler(CollaborationHandler, APIHandler):
    """``PUT api/collaboration/session/{path}``: the file id and this server's session id."""

    @web.authenticated
    @authorized
    async def put(self, path: str) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as e:
            raise web.HTTPError(400, f"body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise web.HTTPError(400, "body must be a JSON object")
        fmt, content_type = body.get("format"), body.get("type")
        if (fmt, content_type) not in KINDS:
            served = ", ".join(f"{f}:{t}" for f, t in KINDS)
            raise web.HTTPError(400, f"unsupported document {fmt}:{content_type}; served: {served}")
        if not await ensure_async(self.contents_manager.file_exists(path)):
            raise web.HTTPError(404, f"no file at {path!r}")
        file_ids = self.settings["file_id_manager"]
        file_id = file_ids.get_id(path)
        status = 200
        if file_id is None:
            file_id = file_ids.index(path)
            status = 201
        if file_id is None:
            raise web.HTTPError(404, f"no file at {path!r}")
        self.set_status(status)
        self.finish(
            {
                "format": fmt,
                "type": content_type,
                "fileId": file_id,
                "sessionId": self.room_manager.session_id,
            }
        )


class WebsocketChannel:
    """A pycrdt ``Channel`` over one Tornado websocket connection."""

    def __init__(self, handler: RoomWebsocketHandler, path: str) -> None:
        self._handler = handler
        self._path = path
        self._messages: asyncio.Queue[bytes | None] = asyncio.Queue()

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        message = await self._messages.get()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv(self) -> bytes:
        return await self.__anext__()

    def feed(self, message: bytes | None) -> None:
        """Hand a received message (None: the connection closed) to the room."""
        self._messages.put_nowait(message)

    async def send(self, message: bytes) -> None:
        try:
            await self._handler.write_message(message, binary=True)
        except WebSocketClosedError:
            self.feed(None)

    def close(self, code: int, reason: str) -> None:
        self._handler.close(code, reason)
        self.feed(None)


class RoomWebsocketHandler(WebSocketMixin, WebSocketHandler, CollaborationHandler):
    """``GET api/collaboration/room/{room}``: y-websocket sync of one document."""

    _channel: WebsocketChannel | None = None
    _room: DocumentRoom | None = None
    _serving: asyncio.Task[None] | None = None

    def initialize(self) -> None:
        self._raw_tasks: set[asyncio.Future[None]] = set()

    def set_default_headers(self) -> None:
        """Undo JupyterHandler's headers, which make no sense for websockets."""

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "write", "contents")):
            raise web.HTTPError(403)
        await super().get(*args, **kwargs)

    async def open(self, room_name: str) -> None:
        super().open()  # keep-alive pings
        session_id = self.get_query_argument("sessionId", None)
        manager = self.room_manager
        if parse_room_name(room_name) is None:
            self.close(CLOSE_BAD_REQUEST, f"not a notebook or text file room: {room_name}"[:120])
            return
        if session_id is not None and not await manager.accepts_session(session_id):
            # The client holds a document from another server process: merging it
            # could duplicate cells, so it must reload (the frontend offers a dialog).
            reason = {"reason": "unknown_session", "sessionId": manager.session_id}
            self.close(CLOSE_RELOAD, json.dumps({**reason, "reloadable": True}))
            return
        try:
            room = await manager.get_room(room_name)
        except RoomError as e:
            code = CLOSE_NOT_FOUND if e.status == 404 else CLOSE_BAD_REQUEST
            self.close(code, e.message[:120])
            return
        except Exception:
            log.exception("cannot open room %s", room_name)
            self.close(CLOSE_SERVER_ERROR, "cannot open the document")
            return
        if self.ws_connection is None or self.ws_connection.is_closing():
            manager.maybe_clean_up(room)
            return
        self._room = room
        self._channel = WebsocketChannel(self, room_name)
        self._serving = asyncio.ensure_future(self._serve(room, self._channel))

    async def _serve(self, room: DocumentRoom, channel: WebsocketChannel) -> None:
        try:
            await room.serve(channel)
        except Exception:
            log.exception("error while serving %s", room.name)
            self.close(CLOSE_SERVER_ERROR, "server error")
        finally:
            self.room_manager.maybe_clean_up(room)

    def on_message(self, message: str | bytes) -> None:
        if self._channel is None:
            return
        if isinstance(message, str) or not message:
            self.close(CLOSE_BAD_REQUEST, "expected a binary y-websocket message")
            return
        if message[0] == RAW_MESSAGE:
            task = asyncio.ensure_future(self._on_raw(message))
            self._raw_tasks.add(task)
            task.add_done_callback(self._raw_tasks.discard)
            return
        self._channel.feed(message)

    def on_close(self) -> None:
        if self._channel is not None:
            self._channel.feed(None)

    async def _on_raw(self, message: bytes) -> None:
        """Answer a save request (Ctrl+S): ``varString "save"`` then ``varUint id``."""
        try:
            decoder = Decoder(message[1:])
            action = decoder.read_var_string()
            save_id = decoder.read_var_uint()
        except Exception:
            self.close(CLOSE_BAD_REQUEST, "malformed raw message")
            return
        if action != "save" or self._room is None:
            return
        try:
            await self._room.autosaver.save_now()
            status = "success"
        except Exception:
            log.exception("saving %s failed", self._room.name)
            status = "failed"
        reply = {"type": "save", "responseTo": save_id, "status": status}
        encoder = Encoder()
        encoder.write_var_uint(RAW_MESSAGE)
        encoder.write_var_string(json.dumps(reply))
        with contextlib.suppress(WebSocketClosedError):
            await self.write_message(encoder.to_bytes(), binary=True)
