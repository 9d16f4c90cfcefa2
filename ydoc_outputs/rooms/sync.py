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

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pycrdt import (
    Doc,
    Subscription,
    TransactionEvent,
    YMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    is_awareness_disconnect_message,
)

__all__ = ["Client", "SyncRoom"]

log = logging.getLogger(__name__)

#: The update of a transaction that changed nothing.
EMPTY_UPDATE = b"\x00\x00"


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

    def start(self) -> None:
        """Broadcast every transaction from now on."""
        if self._subscription is None:
            self._subscription = self.ydoc.observe(self._broadcast)

    def stop(self) -> None:
        if self._subscription is not None:
            self.ydoc.unobserve(self._subscription)
            self._subscription = None

    def _broadcast(self, event: TransactionEvent) -> None:
        if not self.clients:
            return
        update: bytes = event.update
        if update == EMPTY_UPDATE:
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
        if kind == YMessageType.SYNC:
            # Applying an update broadcasts it, through the observer, to every client.
            reply = handle_sync_message(message[1:], self.ydoc)
            if reply is not None:
                client.send_nowait(reply)
        elif kind == YMessageType.AWARENESS:
            leaving = is_awareness_disconnect_message(message[1:])
            for other in tuple(self.clients):
                if not (leaving and other is client):
                    other.send_nowait(message)
