"""A read-only y-websocket client of a notebook's room: a YNotebook kept in sync.

It speaks what the page's provider speaks (sync step 1 and 2, updates; awareness and
save messages are ignored) and never changes the document, so it can follow a run as
long as it likes without touching the notebook.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import YMessageType, YSyncMessageType, create_sync_message, handle_sync_message
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from ..store.documents import without_undo_history
from .connection import CliError, ServerTarget

__all__ = ["RoomClient", "open_room"]

#: The room's close codes a client can meet (docs/api.md), as the message to show.
_CLOSE_REASONS = {
    1003: "the server restarted",
    4404: "the notebook was deleted",
    4400: "the server refused the connection",
    4408: "the connection was too slow",
    4429: "too many requests",
    4500: "the server could not open the notebook",
}
#: Seconds between two websocket pings, so that a dead connection is noticed.
PING_INTERVAL = 20.0


class RoomClient:
    """Keeps :attr:`notebook` in sync with a room until the connection closes."""

    def __init__(self, connection: WebSocketClientConnection, target: ServerTarget) -> None:
        self._ws = connection
        self._target = target
        self.notebook = YNotebook()
        # Nothing is undone here; the undo manager would record every remote update.
        without_undo_history(self.notebook)
        self.synced = asyncio.Event()
        self._step2_seen = False

    async def sync(self) -> None:
        """Ask for the document and wait until it is here."""
        await self._send(create_sync_message(self.notebook.ydoc))
        while not self.synced.is_set():
            await self.receive_one()

    async def receive_one(self) -> None:
        """Apply the next message from the server.

        Raises:
            CliError: The connection closed.
        """
        message = await self._ws.read_message()
        if message is None:
            raise self._closed()
        if isinstance(message, str) or not message or message[0] != YMessageType.SYNC:
            return
        reply = handle_sync_message(message[1:], self.notebook.ydoc)
        if reply is not None:
            await self._send(reply)
        if message[1] == YSyncMessageType.SYNC_STEP2 and not self.synced.is_set():
            if self._step2_seen:
                self.synced.set()
            else:
                # The server may follow its answer with the changes made since it
                # encoded it: the answer to a second step 1 comes after them.
                self._step2_seen = True
                await self._send(create_sync_message(self.notebook.ydoc))

    async def _send(self, message: bytes) -> None:
        try:
            await self._ws.write_message(message, binary=True)
        except WebSocketClosedError:
            raise self._closed() from None

    def _closed(self) -> CliError:
        code = self._ws.close_code
        told = " ".join((self._ws.close_reason or "").split())[:200]
        reason = _CLOSE_REASONS.get(code or 0, "closed") + (f": {told}" if told else "")
        return CliError(
            f"lost the connection to the Jupyter server at {self._target.url} ({reason}"
            f"{f', code {code}' if code else ''})"
        )

    def close(self) -> None:
        self._ws.close()


async def open_room(target: ServerTarget) -> RoomClient:
    """Open the notebook's room as the page does (session, then websocket) and sync it."""
    session = await target.json(
        "PUT",
        f"api/collaboration/session/{target.quoted_path}",
        {"format": "json", "type": "notebook"},
    )
    room = f"json:notebook:{session.get('fileId')}"
    url = target.ws_url(f"api/collaboration/room/{room}?sessionId={session.get('sessionId')}")
    request = HTTPRequest(url, headers=target.headers, request_timeout=60)
    try:
        connection: Any = await websocket_connect(
            request, ping_interval=PING_INTERVAL, max_message_size=2**31 - 1
        )
    except HTTPClientError as e:
        raise CliError(f"cannot open the notebook's room at {target.url}: {e}") from None
    except OSError as e:
        raise CliError(f"cannot reach the Jupyter server at {target.url}: {e}") from None
    client = RoomClient(connection, target)
    await client.sync()
    return client
