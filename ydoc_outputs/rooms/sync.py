"""The y-websocket sync of one shared document with every client of it.

Each transaction on the document is encoded once, as one update message, and queued on
every client's websocket right away, inside the transaction's observer: no task per
client and update, no stream between the document and the clients. With 50 clients and
a hundred output batches a second, this is what keeps the latency of the last client
close to that of the first.

The protocol is y-websocket's, as pycrdt-websocket speaks it: the server sends sync
step 1 to a new client, answers its sync step 1 with step 2 and applies its updates.
Awareness (user names, cursors) is merged per room (``awareness.py``) and sent to every
client, the sender included (browsers use that echo to keep their connection alive), as
one update per ``awareness_interval`` at most, holding the latest state of each client
that changed: with N clients each moving its cursor, each client gets a few messages a
second, not N times as many, and the server's cost grows with N, not N squared. A new
client gets the current states at once; a closed connection's states are removed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from pycrdt import (
    Awareness,
    Doc,
    Encoder,
    Subscription,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    merge_updates,
)

from .awareness import (
    AwarenessEntry,
    AwarenessStates,
    decode_message,
    decode_update,
    encode_message,
    encode_update,
)
from .protocol import CLOSE_TOO_MANY

__all__ = ["AWARENESS_INTERVAL", "AnswerCache", "Client", "SyncRoom"]


#: The update of a transaction that changed nothing.
EMPTY_UPDATE = b"\x00\x00"
#: Sync step 1 of a client that has nothing yet (an empty state vector).
FRESH_SYNC_STEP1 = b"\x00\x00\x01\x00"
#: Bytes of whole-document answers kept over all rooms, unless configured otherwise
#: (``sync_cache_bytes``): a 100 MB notebook's, or a dozen of 10 MB.
CACHE_BYTES = 128 << 20
#: Changes since that answer are sent with it, instead of encoding the document again,
#: up to this many bytes or an eighth of the answer, whichever is more.
TAIL_MAX_BYTES = 1 << 20
#: Seconds between two awareness updates to a client, unless configured otherwise
#: (``awareness_interval``): cursors move at most this late, and 60 clients moving
#: theirs 40 times a second cost each client 10 messages a second, not 2,400.
AWARENESS_INTERVAL = 0.1
#: Live awareness states one connection may hold in its room: a page sends its own
#: (one), and the room keeps each until its sender's connection closes.
MAX_AWARENESS_STATES = 32

#: The sender of the awareness states the server itself publishes (an extension's
#: presence, such as jupyter-ai's personas in a chat).
_SERVER = object()

log = logging.getLogger(__name__)


class Client(Protocol):
    """One connection to a room: the messages it sent, and a way to queue messages to it."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def send_nowait(self, message: bytes) -> None:
        """Queue ``message`` to the client; never raises, never waits."""
        ...

    def close(self, code: int, reason: str) -> None: ...


class AnswerCache:
    """The whole-document answers that rooms keep for their fresh clients, within one
    budget of bytes over every room of the process: to admit one, the answers least
    recently sent go first.

    Attributes:
        max_bytes: The budget; 0 keeps nothing.
        bytes: The size of the answers kept now.
    """

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._rooms: OrderedDict[SyncRoom, int] = OrderedDict()  # least recent first

    def admit(self, room: SyncRoom, size: int) -> bool:
        """Make room for ``room``'s answer of ``size`` bytes, making other rooms forget
        theirs if need be; whether it may keep it (not if it alone exceeds the budget)."""
        self.release(room)
        if size > self.max_bytes:
            return False
        while self.bytes + size > self.max_bytes:
            oldest = next(iter(self._rooms))
            oldest.forget_answer()  # releases it
        self._rooms[room] = size
        self.bytes += size
        return True

    def touch(self, room: SyncRoom) -> None:
        """``room``'s answer was just sent: it goes last."""
        self._rooms.move_to_end(room)

    def release(self, room: SyncRoom) -> None:
        size = self._rooms.pop(room, None)
        if size is not None:
            self.bytes -= size


class SyncRoom:
    """Keeps the clients of one document in sync with it and with each other.

    Attributes:
        clients: The connected clients.
    """

    def __init__(
        self,
        ydoc: Doc[Any],
        on_bad_message: Callable[[Exception, Client], None],
        cache: AnswerCache | None = None,
        awareness_interval: float = AWARENESS_INTERVAL,
    ) -> None:
        """Serve ``ydoc``; a client whose message raises is passed to ``on_bad_message``.
        ``cache``: the budget of kept answers this room shares with others (by default
        one of its own). ``awareness_interval``: seconds between two awareness updates
        to the clients; 0 sends each client's update on at once."""
        self.ydoc = ydoc
        self.clients: set[Client] = set()
        #: The client whose update is being applied: the broadcast skips it.
        self._applying_from: Client | None = None
        self._on_bad_message = on_bad_message
        self._cache = cache if cache is not None else AnswerCache()
        self._subscription: Subscription | None = None
        #: The answer to a fresh client (sync step 2 of the whole document), until the
        #: changes since outgrow it, the cache needs its bytes, or the room stops.
        self._answer: bytes | None = None
        #: The updates of the transactions since, their size, and them as one message.
        self._tail: list[bytes] = []
        self._tail_bytes = 0
        self._tail_message: bytes | None = None
        self._awareness: AwarenessStates[Any] = AwarenessStates()
        self._awareness_interval = awareness_interval
        self._awareness_timer: asyncio.TimerHandle | None = None
        #: When the last awareness update went out (the event loop's clock).
        self._awareness_sent_at = -math.inf
        self._pycrdt_awareness: RoomAwareness | None = None
        #: The clients' latest entries not yet applied to it, by client id.
        self._unmirrored: dict[int, AwarenessEntry] = {}

    @property
    def awareness(self) -> Awareness:
        """The room's awareness as a pycrdt ``Awareness``, for server-side extensions
        (jupyter-server-ydoc gives each room one): it holds the clients' states, at most
        one awareness interval late, and the states set on it, under any client id
        (jupyter-ai's personas), go to every client, merged with theirs."""
        if self._pycrdt_awareness is None:
            awareness = self._pycrdt_awareness = RoomAwareness(self.ydoc, self._mirror)
            awareness.observe(self._local_awareness)
        return self._pycrdt_awareness

    def _mirror(self) -> None:
        """Apply the clients' entries sent since the last call to the pycrdt awareness."""
        awareness = self._pycrdt_awareness
        if awareness is None or not self._unmirrored:
            return
        update = encode_update(self._unmirrored.values())
        self._unmirrored.clear()
        awareness.apply_awareness_update(update, "room")

    def _local_awareness(self, topic: str, change: tuple[dict[str, Any], Any]) -> None:
        changes, origin = change
        if topic != "update" or origin != "local" or self._pycrdt_awareness is None:
            return
        client_ids = [*changes["added"], *changes["updated"], *changes["removed"]]
        self.publish_awareness(self._pycrdt_awareness.encode_awareness_update(client_ids))

    def publish_awareness(self, update: bytes) -> None:
        """Send the server's own awareness states (an encoded awareness update) to the
        clients, merged as theirs are; they stay until replaced or removed."""
        if self._awareness.apply(decode_update(update), _SERVER):
            self._awareness_changed()

    def start(self, state: bytes | None = None) -> None:
        """Broadcast every transaction from now on. ``state``: the whole document, just
        encoded as one update, which fresh clients may then get without encoding it."""
        if self._subscription is None:
            self._subscription = self.ydoc.observe(self._broadcast)
        if state is not None:
            self._keep_answer(_sync_step2(state))

    def stop(self) -> None:
        if self._subscription is not None:
            self.ydoc.unobserve(self._subscription)
            self._subscription = None
        self.forget_answer()
        if self._awareness_timer is not None:
            self._awareness_timer.cancel()
            self._awareness_timer = None

    def _broadcast(self, event: TransactionEvent) -> None:
        update: bytes = event.update
        if update == EMPTY_UPDATE:
            return
        self._add_to_tail(update)
        if not self.clients:
            return
        message = create_update_message(update)
        sender = self._applying_from
        for client in tuple(self.clients):
            if client is not sender:
                client.send_nowait(message)

    async def serve(self, client: Client) -> None:
        """Sync ``client`` until its messages end.

        A pycrdt panic on one of its messages (a ``BaseException``) propagates: the caller
        closes that client.
        """
        self.clients.add(client)
        try:
            client.send_nowait(create_sync_message(self.ydoc))
            states = self._awareness.states()
            if states:  # the collaborators, before any of them moves again
                client.send_nowait(encode_message(states))
            async for message in client:
                try:
                    self._handle(client, message)
                except Exception as e:
                    self._on_bad_message(e, client)
        finally:
            self.clients.discard(client)
            # Its page will not say goodbye: the others hear it from the room.
            if self._awareness.remove_sent_by(client):
                self._awareness_changed()

    def _handle(self, client: Client, message: bytes) -> None:
        kind = message[0]
        if message == FRESH_SYNC_STEP1:
            for answer in self._whole_document():
                client.send_nowait(answer)
        elif kind == YMessageType.SYNC:
            # Applying an update broadcasts it, through the observer, to every other
            # client: the sender has it (y-websocket's own server echoes it back, which
            # a Run All's marks made one more message per cell each way).
            self._applying_from = client
            try:
                reply = handle_sync_message(message[1:], self.ydoc)
            finally:
                self._applying_from = None
            if reply is not None:
                client.send_nowait(reply)
        elif kind == YMessageType.AWARENESS:
            if not self._awareness.apply(decode_message(message), client):
                return  # nothing newer than what every client has
            if self._awareness.count_sent_by(client) > MAX_AWARENESS_STATES:
                # Each state stays until its connection closes: bound what one keeps.
                self._awareness.remove_sent_by(client)
                client.close(CLOSE_TOO_MANY, "too many awareness states")
            self._awareness_changed()

    def _awareness_changed(self) -> None:
        """Send the awareness changes now if the last update went out at least an
        interval ago (a cursor moved after a quiet moment is seen at once), else once
        it has."""
        if self._awareness_timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._awareness_sent_at + self._awareness_interval - loop.time()
        if wait > 0:
            self._awareness_timer = loop.call_later(wait, self._send_awareness)
        else:
            self._send_awareness()

    def _send_awareness(self) -> None:
        """Send every client one update: the latest entry of each client id that changed."""
        self._awareness_timer = None
        changes = self._awareness.take_changes()
        if not changes:
            return
        self._awareness_sent_at = asyncio.get_running_loop().time()
        message = encode_message(changes)
        for client in tuple(self.clients):
            client.send_nowait(message)
        awareness = self._pycrdt_awareness
        if awareness is not None:
            # Decoding every state into the pycrdt awareness cost a third more CPU with
            # 60 busy clients: it is done when an extension reads the states, or at once
            # if one observes the awareness (besides this room).
            self._unmirrored.update((entry.client_id, entry) for entry in changes)
            if awareness.observed:
                try:
                    self._mirror()
                except Exception:
                    log.exception("an awareness observer failed")

    def _whole_document(self) -> list[bytes]:
        """The messages that give a fresh client the whole document: sync step 2 of the
        kept encoding of it, then the changes since, as one update (the client is
        synced once it has both; in this order, nothing waits for what it builds on).

        The encoding is kept, within the :class:`AnswerCache`'s budget, while the room is
        open and changes little: a page reload, or a reconnection storm while a cell
        prints (every browser of a notebook at once, after a network blip, some of them
        retrying for a while), costs at most one encoding, not one per client and
        change. The room's own clients are the ones that reconnect, whenever that is.
        """
        if self._answer is None:
            answer = _sync_step2(self.ydoc.get_update())
            if not self._keep_answer(answer):
                return [answer]
        else:
            self._cache.touch(self)
        assert self._answer is not None
        if not self._tail:
            return [self._answer]
        if self._tail_message is None:
            merged = self._tail[0] if len(self._tail) == 1 else merge_updates(*self._tail)
            self._tail = [merged]
            self._tail_message = create_update_message(merged)
        return [self._answer, self._tail_message]

    def _add_to_tail(self, update: bytes) -> None:
        if self._answer is None:
            return
        self._tail_bytes += len(update)
        if self._tail_bytes > max(TAIL_MAX_BYTES, len(self._answer) // 8):
            self.forget_answer()  # encoding the document again is cheaper
            return
        self._tail.append(update)
        self._tail_message = None

    def _keep_answer(self, message: bytes) -> bool:
        """Keep ``message`` as the answer, if the cache admits it; whether it did."""
        self.forget_answer()
        if not self._cache.admit(self, len(message)):
            return False
        self._answer = message
        return True

    def forget_answer(self) -> None:
        """Drop the kept answer and the changes since (its bytes leave the cache)."""
        self._cache.release(self)
        self._answer = None
        self._tail = []
        self._tail_bytes = 0
        self._tail_message = None


class RoomAwareness(Awareness):
    """A room's pycrdt ``Awareness``, which takes the clients' states from the room when
    they are read (``states``, ``meta``) or, if an extension observes it, as they come."""

    def __init__(self, ydoc: Doc[Any], mirror: Callable[[], None]) -> None:
        self._pull = mirror
        super().__init__(ydoc)

    @property
    def observed(self) -> bool:
        """Whether an observer besides the room's own is subscribed."""
        return len(self._subscriptions) > 1

    @property
    def states(self) -> dict[int, dict[str, Any]]:
        self._pull()
        return self._states

    @property
    def meta(self) -> dict[int, dict[str, Any]]:
        self._pull()
        return self._meta


def _sync_step2(update: bytes) -> bytes:
    """A sync step 2 message, with one copy of ``update`` (pycrdt's makes two)."""
    header = Encoder()
    header.write_var_uint(YMessageType.SYNC)
    header.write_var_uint(YSyncMessageType.SYNC_STEP2)
    header.write_var_uint(len(update))
    return b"".join((header.to_bytes(), update))
