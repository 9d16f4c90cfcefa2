"""Awareness (y-protocols): the wire format of an update, and a room's merged states.

Pure, no I/O: :class:`AwarenessStates` merges the updates of a room's clients exactly as
y-protocols' ``applyAwarenessUpdate`` does in every browser, and keeps what changed
until the room sends it (``rooms/sync.py`` decides when).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .protocol import AWARENESS_MESSAGE, FrameError, FrameReader

__all__ = [
    "NULL_STATE",
    "AwarenessEntry",
    "AwarenessStates",
    "decode_message",
    "decode_update",
    "encode_message",
    "encode_update",
]

#: The state of a client that left (JSON ``null``).
NULL_STATE = "null"
#: What JSON allows around a value (``json.loads`` allows no more).
_JSON_WHITESPACE = " \t\n\r"
#: Client ids whose latest entry is a removal, kept per room so that an older state of
#: theirs, arriving late, is refused as browsers refuse it; past this, the oldest go.
MAX_REMOVED = 4096

#: What sends updates to a room: one connection (any hashable object).
Sender = TypeVar("Sender")


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's state in an awareness update.

    Attributes:
        client_id: The Y client id of the page (its ``doc.clientID``).
        clock: Increases with each change of that client's state.
        state: Its state, the JSON text as the client sent it; :data:`NULL_STATE` if it
            left.
    """

    client_id: int
    clock: int
    state: str

    @property
    def removed(self) -> bool:
        return self.state == NULL_STATE


def decode_update(data: bytes, start: int = 0, end: int | None = None) -> list[AwarenessEntry]:
    """The entries of the awareness update in ``data[start:end]``: a varUint count, then
    for each client a varUint client id, a varUint clock and a varString JSON state.

    The JSON is not parsed: ``check_message`` has checked it. A null state written with
    whitespace around it is read as :data:`NULL_STATE`.

    Raises:
        FrameError: the update is truncated or has trailing bytes.
    """
    reader = FrameReader(data, start, end)
    entries = []
    for _ in range(reader.var_uint()):
        if reader.pos >= reader.end:
            raise FrameError("fewer awareness states than announced")
        client_id = reader.var_uint()
        clock = reader.var_uint()
        state = reader.var_string()
        if state.strip(_JSON_WHITESPACE) == NULL_STATE:
            state = NULL_STATE
        entries.append(AwarenessEntry(client_id, clock, state))
    reader.finish()
    return entries


def decode_message(message: bytes) -> list[AwarenessEntry]:
    """The entries of a y-websocket awareness message (type 1, then the update as a
    varUint8Array).

    Raises:
        FrameError: the message is not a well-framed awareness message.
    """
    if not message or message[0] != AWARENESS_MESSAGE:
        raise FrameError("not an awareness message")
    reader = FrameReader(message, 1)
    start, end = reader.var_bytes()
    reader.finish()
    return decode_update(message, start, end)


def _var_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_update(entries: Iterable[AwarenessEntry]) -> bytes:
    """The awareness update holding ``entries``, as y-protocols encodes it."""
    parts = []
    count = 0
    for entry in entries:
        state = entry.state.encode()
        parts += [_var_uint(entry.client_id), _var_uint(entry.clock), _var_uint(len(state)), state]
        count += 1
    return _var_uint(count) + b"".join(parts)


def encode_message(entries: Iterable[AwarenessEntry]) -> bytes:
    """The y-websocket awareness message holding ``entries``."""
    update = encode_update(entries)
    return bytes([AWARENESS_MESSAGE]) + _var_uint(len(update)) + update


def _supersedes(entry: AwarenessEntry, known: AwarenessEntry | None) -> bool:
    """Whether a browser that knows ``known`` of this client takes ``entry`` (y-protocols'
    rule): a newer clock, or a removal of a live state at the same clock (how a peer
    says that a client is gone, and how a server does when its connection closed)."""
    clock = 0 if known is None else known.clock  # browsers start unknown clients at 0
    if entry.clock != clock:
        return entry.clock > clock
    return entry.removed and known is not None and not known.removed


class AwarenessStates(Generic[Sender]):
    """The latest entry of every client id of one room, merged as browsers merge them,
    the connection that sent each live state, and the entries not yet sent.

    Senders are any hashable objects (the room's clients).
    """

    def __init__(self, max_removed: int = MAX_REMOVED) -> None:
        self._max_removed = max_removed
        self._latest: dict[int, AwarenessEntry] = {}
        #: Client ids whose latest entry is a removal, oldest first.
        self._removed: dict[int, None] = {}
        #: The connection that sent each live state, and the reverse.
        self._sender: dict[int, Sender] = {}
        self._sent_by: dict[Sender, set[int]] = {}
        #: The entries taken since :meth:`take_changes` was last called, one per client.
        self._changes: dict[int, AwarenessEntry] = {}

    def apply(self, entries: Iterable[AwarenessEntry], sender: Sender) -> int:
        """Merge ``entries``, received from ``sender``; how many were taken (the others
        are not newer than what the room has, and every browser would ignore them)."""
        taken = 0
        for entry in entries:
            if _supersedes(entry, self._latest.get(entry.client_id)):
                self._take(entry, sender)
                taken += 1
        return taken

    def remove_sent_by(self, sender: Sender) -> int:
        """``sender``'s connection closed: remove every state it was the last to send,
        each with a null state at its clock, as y-websocket's server does (then a page
        that reconnects and sends its state again with the next clock is taken). How
        many were removed."""
        client_ids = list(self._sent_by.get(sender, ()))
        for client_id in client_ids:
            clock = self._latest[client_id].clock
            self._take(AwarenessEntry(client_id, clock, NULL_STATE), None)
        return len(client_ids)

    def count_sent_by(self, sender: Sender) -> int:
        """How many live states ``sender`` was the last to send."""
        return len(self._sent_by.get(sender, ()))

    def states(self) -> list[AwarenessEntry]:
        """The live states (what a client that connects now needs)."""
        return [entry for entry in self._latest.values() if not entry.removed]

    def take_changes(self) -> list[AwarenessEntry]:
        """The latest entry of each client taken since the last call, and forget them."""
        changes = list(self._changes.values())
        self._changes.clear()
        return changes

    def _take(self, entry: AwarenessEntry, sender: Sender | None) -> None:
        client_id = entry.client_id
        self._latest[client_id] = entry
        self._changes[client_id] = entry
        previous = self._sender.pop(client_id, None)
        if previous is not None:
            self._sent_by[previous].discard(client_id)
            if not self._sent_by[previous]:
                del self._sent_by[previous]
        self._removed.pop(client_id, None)
        if entry.removed:
            self._removed[client_id] = None
            if len(self._removed) > self._max_removed:
                oldest = next(iter(self._removed))
                del self._removed[oldest]
                del self._latest[oldest]
        elif sender is not None:
            self._sender[client_id] = sender
            self._sent_by.setdefault(sender, set()).add(client_id)
