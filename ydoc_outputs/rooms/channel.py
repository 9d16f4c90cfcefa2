"""One room websocket connection as the room sees it: the messages its client sent, and
the messages queued to it, counted until they are written to its socket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from tornado.iostream import StreamClosedError

from ..ydoc.guard import UpdateRefused
from .budget import SHARED_MIN_BYTES, PendingBudget
from .limits import WebsocketLimits
from .protocol import CLOSE_BAD_REQUEST, CLOSE_TOO_SLOW, SYNC_MESSAGE, binary_frame_header

if TYPE_CHECKING:
    from .handlers import RoomWebsocketHandler

__all__ = ["MAX_QUEUED_MESSAGES", "WebsocketChannel", "close_reason"]

log = logging.getLogger(__name__)
#: Received messages a connection may have queued for its room. When the room is that far
#: behind, the handler stops reading the socket (TCP back-pressure on the sender) rather
#: than buffering a flood in memory.
MAX_QUEUED_MESSAGES = 64
#: The start of a sync step 2 message: the document (or what a client lacks of it), in
#: answer to the client's sync step 1.
SYNC_STEP2_PREFIX = bytes([SYNC_MESSAGE, 1])
#: A large message is handed to the socket in views of this many bytes.
WRITE_CHUNK_BYTES = 1 << 20


class WebsocketChannel:
    """A room's :class:`~.sync.Client` over one Tornado websocket connection.

    Received messages wait in a short queue for the room; outgoing bytes not yet written
    to the socket are counted, and a client that lets them pile up is closed (its own
    limit), or the one holding most when all together hold too much (``budget``).
    """

    def __init__(
        self,
        handler: RoomWebsocketHandler,
        path: str,
        *,
        max_pending_bytes: int = WebsocketLimits.max_pending_bytes,
        admit: Callable[[bytes], None] | None = None,
        budget: PendingBudget | None = None,
    ) -> None:
        self._handler = handler
        self._path = path
        self._admit = admit
        self._max_pending_bytes = max_pending_bytes
        self._queue: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._budget = budget
        if budget is not None:
            budget.add(self)
        #: Messages queued for the client, and those handed to its socket and not yet
        #: written (the one batch being written).
        self._outbox: deque[bytes] = deque()
        self._in_flight: list[bytes] = []
        self._pending_bytes = 0
        self._stuck_since = time.monotonic()
        #: The one sync step 2 being sent, and its bytes, which the limit does not count.
        self._sync_message: bytes | None = None
        self._pending_sync_bytes = 0
        #: Nothing more is sent: the connection was closed or lost.
        self._gone = False
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
                self.close(CLOSE_BAD_REQUEST, close_reason(f"update refused: {e}"))
                continue
            return message

    def put_nowait(self, message: bytes) -> bool:
        """Hand a received message to the room if its queue has room; whether it had
        (a message that came after the end is dropped, and counts as handed)."""
        if len(self._queue) >= MAX_QUEUED_MESSAGES and not self.ended:
            return False
        if not self.ended:
            self._queue.append(message)
            self._readable.set()
        return True

    async def put(self, message: bytes) -> None:
        """Hand a received message to the room; wait while the room is far behind."""
        while not self.put_nowait(message):
            self._writable.clear()
            await self._writable.wait()

    def end(self, *, drop: bool) -> None:
        """No more messages: the client left (``drop=False``: what it sent is still
        applied) or was closed by the server (``drop=True``: its queue is discarded)."""
        self.ended = True
        if drop:
            self._queue.clear()
        self._readable.set()
        self._writable.set()

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the client and not yet written to its socket."""
        return self._pending_bytes

    @property
    def stuck_since(self) -> float:
        """When (``time.monotonic()``) the client last read: the last chunk of at most
        1 MiB written to its socket, or the moment it last had nothing pending. A client
        reading a large sync makes progress every few milliseconds."""
        return self._stuck_since

    def send_nowait(self, message: bytes) -> None:
        """Queue ``message`` to the client. Never raises: the room calls this inside a
        transaction's observer, for every client in turn."""
        if self._gone:
            return
        if self._pending_bytes - self._pending_sync_bytes > self._max_pending_bytes:
            # Closing loses nothing: the client's reconnection resyncs the whole
            # document. The check is on what already waits, so that one message larger
            # than the limit goes; and one sync step 2 in flight does not count, so that
            # a document larger than the limit syncs while it changes (the updates
            # meanwhile, and the changes the server sends right after a kept step 2,
            # queue behind it). A second step 2 does count: a client that asks for the
            # whole document again and again, and reads nothing, is still closed.
            self.close(CLOSE_TOO_SLOW, "client too slow: too much data waiting to be sent")
            return
        if self._budget is not None and not self._budget.admit(self, message):
            return  # this connection held the most of all: closed to make room
        if not self._pending_bytes:
            self._stuck_since = time.monotonic()
        self._outbox.append(message)
        self._pending_bytes += len(message)
        if self._budget is not None:
            self._budget.hold(message)
        if not self._pending_sync_bytes and message.startswith(SYNC_STEP2_PREFIX):
            self._pending_sync_bytes = len(message)
            self._sync_message = message
        if not self._in_flight:
            self._write()

    def _write(self) -> None:
        """Hand every queued message to the socket, as frames written by reference.

        Tornado's ``write_message`` would copy each message into a frame of its own, for
        every client, and start a task per message: a client that read nothing cost the
        server a copy of the whole-document sync (5.5 MB for a 5.5 MB notebook) and
        about 2 KB per update it was sent, 30 times the update itself when a user types.
        Here a large message goes to every client's socket buffer as the one object the
        room made, and the messages queued while a batch is being written wait in
        ``_outbox`` as references: a few futures per batch, not one task per message.
        """
        connection = self._handler.ws_connection
        stream = connection.stream if connection is not None else None
        batch = list(self._outbox)
        self._outbox.clear()
        self._in_flight = batch
        if stream is None or connection is None or connection.is_closing():
            self._lost()
            return
        try:
            for chunk in _frames(batch):
                written = stream.write(chunk)
                written.add_done_callback(self._progressed)
        except StreamClosedError:
            self._lost()
            return
        written.add_done_callback(self._written)

    def _progressed(self, future: asyncio.Future[None]) -> None:
        self._stuck_since = time.monotonic()

    def _written(self, future: asyncio.Future[None]) -> None:
        batch, self._in_flight = self._in_flight, []
        if self._gone:
            return  # released when it went
        self._pending_bytes -= sum(len(m) for m in batch)
        if self._sync_message is not None and any(m is self._sync_message for m in batch):
            self._pending_sync_bytes = 0
            self._sync_message = None
        if self._budget is not None:
            self._budget.release(batch)
        if future.cancelled() or future.exception() is not None:
            self._lost()  # StreamClosedError: the client went away
        elif self._outbox:
            self._write()

    def stop_sending(self) -> None:
        """Nothing more will be sent: release what waited."""
        if self._gone:
            return
        self._gone = True
        held = [*self._in_flight, *self._outbox]
        self._in_flight = []
        self._outbox.clear()
        self._pending_bytes = self._pending_sync_bytes = 0
        self._sync_message = None
        if self._budget is not None:
            self._budget.remove(self, held)

    def _lost(self) -> None:
        """The connection went away."""
        self.stop_sending()
        self.end(drop=False)

    def close(self, code: int, reason: str) -> None:
        self._handler.close(code, reason)
        self.stop_sending()
        self.end(drop=True)

    def evict(self) -> None:
        """Close the connection for the server-wide budget of pending bytes.

        Its close frame waits behind what the client did not read, and Tornado keeps
        that for 5 s before it drops the connection; a client that cannot take the frame
        now is dropped at once, so that its memory goes now (it sees 1006, and
        reconnects as it would after 4408).
        """
        log.warning(
            "closing a client of %s (%d): %d bytes wait for it, more than any other, and "
            "the room websockets together hold more than websocket_max_total_pending_bytes",
            self._path,
            CLOSE_TOO_SLOW,
            self._pending_bytes,
        )
        connection = self._handler.ws_connection  # the handler forgets it on close
        self.close(CLOSE_TOO_SLOW, "server busy: too much data waiting to be sent")
        stream = connection.stream if connection is not None else None
        if stream is not None and stream.writing():
            stream.close()


def _frames(messages: list[bytes]) -> list[bytes | memoryview]:
    """Websocket frames of ``messages``, as chunks to write in order: the headers and
    the small messages copied together, each large message as views of itself, 1 MiB
    each (so that its writing shows progress, for :attr:`WebsocketChannel.stuck_since`)."""
    chunks: list[bytes | memoryview] = []
    small = bytearray()
    for message in messages:
        small += binary_frame_header(len(message))
        if len(message) < SHARED_MIN_BYTES:
            small += message
        else:
            chunks.append(memoryview(small))
            whole = memoryview(message)
            chunks.extend(
                whole[i : i + WRITE_CHUNK_BYTES] for i in range(0, len(message), WRITE_CHUNK_BYTES)
            )
            small = bytearray()
    if small:
        chunks.append(memoryview(small))
    return chunks


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame: 123 bytes of UTF-8 (RFC 6455, 5.5)."""
    return text.encode()[:123].decode(errors="ignore")
