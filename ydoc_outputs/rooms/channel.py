"""One room websocket connection as the room sees it: the messages its client sent, and
the messages queued to it, counted until they are written to its socket."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from ..ydoc.guard import UpdateRefused
from .limits import WebsocketLimits
from .protocol import CLOSE_BAD_REQUEST, CLOSE_TOO_SLOW, SYNC_MESSAGE

if TYPE_CHECKING:
    from .handlers import RoomWebsocketHandler

__all__ = ["MAX_QUEUED_MESSAGES", "WebsocketChannel"]

log = logging.getLogger(__name__)
#: Received messages a connection may have queued for its room. When the room is that far
#: behind, the handler stops reading the socket (TCP back-pressure on the sender) rather
#: than buffering a flood in memory.
MAX_QUEUED_MESSAGES = 64
#: The start of a sync step 2 message: the document (or what a client lacks of it), in
#: answer to the client's sync step 1.
SYNC_STEP2_PREFIX = bytes([SYNC_MESSAGE, 1])


class WebsocketChannel:
    """A room's :class:`~.sync.Client` over one Tornado websocket connection.

    Received messages wait in a short queue for the room; outgoing bytes not yet written
    to the socket are counted, and a client that lets them pile up is closed.
    """

    def __init__(
        self,
        handler: RoomWebsocketHandler,
        path: str,
        *,
        max_pending_bytes: int = WebsocketLimits.max_pending_bytes,
        admit: Callable[[bytes], None] | None = None,
    ) -> None:
        self._handler = handler
        self._path = path
        self._admit = admit
        self._max_pending_bytes = max_pending_bytes
        self._queue: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._pending_bytes = 0
        #: The bytes of the one sync step 2 being sent, which the limit does not count.
        self._pending_sync_bytes = 0
        #: No message will be added any more; the room stops once the queue is empty.
        self.ended = False

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WebsocketChannel:
        return self

    async def __anext__(self) -> bytes:
        while True:
            while not self._queue:
                if self.ended:
                    raise StopAsyncIteration
                self._readable.clear()
                await self._readable.wait()
            message = self._queue.popleft()
            self._writable.set()
            if self._admit is None:
                return message
            # The room applies the message as soon as this returns (no await between):
            # the check sees exactly the document the update will be applied to.
            try:
                self._admit(message)
            except UpdateRefused as e:
                log.info("closing a client of %s: update refused: %s", self._path, e)
                self.close(CLOSE_BAD_REQUEST, _reason(f"update refused: {e}"))
                continue
            return message

    async def put(self, message: bytes) -> None:
        """Hand a received message to the room; wait while the room is far behind."""
        while len(self._queue) >= MAX_QUEUED_MESSAGES and not self.ended:
            self._writable.clear()
            await self._writable.wait()
        if not self.ended:
            self._queue.append(message)
            self._readable.set()

    def end(self, *, drop: bool) -> None:
        """No more messages: the client left (``drop=False``: what it sent is still
        applied) or was closed by the server (``drop=True``: its queue is discarded)."""
        self.ended = True
        if drop:
            self._queue.clear()
        self._readable.set()
        self._writable.set()

    def send_nowait(self, message: bytes) -> None:
        """Queue ``message`` on the websocket. Never raises: the room calls this inside
        a transaction's observer, for every client in turn."""
        if self.ended and not self._queue:
            return
        if self._pending_bytes - self._pending_sync_bytes > self._max_pending_bytes:
            # Tornado buffers whatever the client does not read, without bound. Closing
            # loses nothing: the client's reconnection resyncs the whole document. The
            # check is on what already waits, so that one message larger than the limit
            # goes; and one sync step 2 in flight does not count, so that a document
            # larger than the limit syncs while it changes (the updates meanwhile, and
            # the changes the server sends right after a kept step 2, queue behind it).
            # A second step 2 does count: a client that asks for the whole document
            # again and again, and reads nothing, is still closed.
            self.close(CLOSE_TOO_SLOW, "client too slow: too much data waiting to be sent")
            return
        size = len(message)
        try:
            written = self._handler.write_message(message, binary=True)
        except WebSocketClosedError:
            self.end(drop=False)
            return
        # Not awaited: Tornado has queued the frame, and waiting until it reaches the
        # socket would need one task per client and update (50 clients at 100 updates a
        # second). The bytes count as pending until then.
        self._pending_bytes += size
        sync = not self._pending_sync_bytes and message.startswith(SYNC_STEP2_PREFIX)
        if sync:
            self._pending_sync_bytes = size
        written.add_done_callback(lambda future: self._written(future, size, sync))

    def _written(self, future: asyncio.Future[None], size: int, sync: bool) -> None:
        self._pending_bytes -= size
        if sync:
            self._pending_sync_bytes = 0
        if not future.cancelled() and isinstance(future.exception(), StreamClosedError):
            self.end(drop=False)

    def close(self, code: int, reason: str) -> None:
        self._handler.close(code, reason)
        self.end(drop=True)


def _reason(text: str) -> str:
    """``text`` cut to fit a close frame: 123 bytes of UTF-8 (RFC 6455, 5.5)."""
    return text.encode()[:123].decode(errors="ignore")
