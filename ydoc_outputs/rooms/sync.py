"""The y-websocket sync of one shared document with every client of it.

Each transaction on the document is encoded once, as one update message, and queued on
every client's websocket right away, inside the transaction's observer: no task per
client and update, no stream between the document and the clients. With 50 clients and
a hundred output batches a second, this is what keeps the latency of the last client
close to that of the first.

The protocol is y-websocket's, as pycrdt-websocket speaks it: the server sends sync
step 1 to a new client, answers its sync step 1 with step 2, applies its updates, and
echoes awareness messages to every client of the room (the sender included: browsers
use the echo to keep their connection alive).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pycrdt import (
    Doc,
    Encoder,
    Subscription,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    is_awareness_disconnect_message,
    merge_updates,
)

__all__ = ["Client", "SyncRoom"]


#: The update of a transaction that changed nothing.
EMPTY_UPDATE = b"\x00\x00"
#: Sync step 1 of a client that has nothing yet (an empty state vector).
FRESH_SYNC_STEP1 = b"\x00\x00\x01\x00"
#: Seconds the whole-document answer to a fresh client is kept after its last use.
FULL_SYNC_TTL = 10.0
#: Changes since that answer are sent with it, instead of encoding the document again,
#: up to this many bytes or an eighth of the answer, whichever is more.
TAIL_MAX_BYTES = 1 << 20


class Client(Protocol):
    """One connection to a room: the messages it sent, and a way to queue messages to it."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def send_nowait(self, message: bytes) -> None:
        """Queue ``message`` to the client; never raises, never waits."""
        ...

    def close(self, code: int, reason: str) -> None: ...


class SyncRoom:
    """Keeps the clients of one document in sync with it and with each other.

    Attributes:
        clients: The connected clients.
    """

    def __init__(self, ydoc: Doc[Any], on_bad_message: Callable[[Exception, Client], None]) -> None:
        """Serve ``ydoc``; a client whose message raises is passed to ``on_bad_message``."""
        self.ydoc = ydoc
        self.clients: set[Client] = set()
        self._on_bad_message = on_bad_message
        self._subscription: Subscription | None = None
        #: The answer to a fresh client (sync step 2 of the whole document), until it
        #: expires or the changes since outgrow it.
        self._full_sync: bytes | None = None
        self._full_sync_expiry: asyncio.TimerHandle | None = None
        #: The updates of the transactions since, their size, and them as one message.
        self._tail: list[bytes] = []
        self._tail_bytes = 0
        self._tail_message: bytes | None = None

    def start(self, state: bytes | None = None) -> None:
        """Broadcast every transaction from now on. ``state``: the whole document, just
        encoded as one update, which fresh clients may then get without encoding it."""
        if self._subscription is None:
            self._subscription = self.ydoc.observe(self._broadcast)
        if state is not None:
            self._keep_full_sync(_sync_step2(state))

    def stop(self) -> None:
        if self._subscription is not None:
            self.ydoc.unobserve(self._subscription)
            self._subscription = None
        self._forget_full_sync()

    def _broadcast(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if update == EMPTY_UPDATE:
            return
        self._add_to_tail(update)
        if not self.clients:
            return
        message = create_update_message(update)
        for client in tuple(self.clients):
            client.send_nowait(message)

    async def serve(self, client: Client) -> None:
        """Sync ``client`` until its messages end.

        A pycrdt panic on one of its messages (a ``BaseException``) propagates: the caller
        closes that client.
        """
        self.clients.add(client)
        try:
            client.send_nowait(create_sync_message(self.ydoc))
            async for message in client:
                try:
                    self._handle(client, message)
                except Exception as e:
                    self._on_bad_message(e, client)
        finally:
            self.clients.discard(client)

    def _handle(self, client: Client, message: bytes) -> None:
        kind = message[0]
        if message == FRESH_SYNC_STEP1:
            for answer in self._whole_document():
                client.send_nowait(answer)
        elif kind == YMessageType.SYNC:
            # Applying an update broadcasts it, through the observer, to every client.
            reply = handle_sync_message(message[1:], self.ydoc)
            if reply is not None:
                client.send_nowait(reply)
        elif kind == YMessageType.AWARENESS:
            leaving = is_awareness_disconnect_message(message[1:])
            for other in tuple(self.clients):
                if not (leaving and other is client):
                    other.send_nowait(message)

    def _whole_document(self) -> list[bytes]:
        """The messages that give a fresh client the whole document: sync step 2 of the
        kept encoding of it, then the changes since, as one update (the client is
        synced once it has both; in this order, nothing waits for what it builds on).

        The document is encoded once for every fresh client until none came for
        :data:`FULL_SYNC_TTL` seconds, while it changes too: a page reload, or a
        reconnection storm while a cell prints (every browser of a notebook at once,
        after a network blip, some of them retrying for a while), costs one encoding,
        not one per client and change.
        """
        if self._full_sync is None:
            self._keep_full_sync(_sync_step2(self.ydoc.get_update()))
        else:
            self._expire_later()
        assert self._full_sync is not None
        if not self._tail:
            return [self._full_sync]
        if self._tail_message is None:
            merged = self._tail[0] if len(self._tail) == 1 else merge_updates(*self._tail)
            self._tail = [merged]
            self._tail_message = create_update_message(merged)
        return [self._full_sync, self._tail_message]

    def _add_to_tail(self, update: bytes) -> None:
        if self._full_sync is None:
            return
        self._tail_bytes += len(update)
        if self._tail_bytes > max(TAIL_MAX_BYTES, len(self._full_sync) // 8):
            self._forget_full_sync()  # encoding the document again is cheaper
            return
        self._tail.append(update)
        self._tail_message = None

    def _keep_full_sync(self, message: bytes) -> None:
        self._forget_full_sync()
        self._full_sync = message
        self._expire_later()

    def _expire_later(self) -> None:
        if self._full_sync_expiry is not None:
            self._full_sync_expiry.cancel()
        loop = asyncio.get_running_loop()
        self._full_sync_expiry = loop.call_later(FULL_SYNC_TTL, self._forget_full_sync)

    def _forget_full_sync(self) -> None:
        self._full_sync = None
        self._tail = []
        self._tail_bytes = 0
        self._tail_message = None
        if self._full_sync_expiry is not None:
            self._full_sync_expiry.cancel()
            self._full_sync_expiry = None


def _sync_step2(update: bytes) -> bytes:
    """A sync step 2 message, with one copy of ``update`` (pycrdt's makes two)."""
    header = Encoder()
    header.write_var_uint(YMessageType.SYNC)
    header.write_var_uint(YSyncMessageType.SYNC_STEP2)
    header.write_var_uint(len(update))
    return b"".join((header.to_bytes(), update))
