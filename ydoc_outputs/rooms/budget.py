"""Server-wide limits of the room websockets: the bytes waiting on all of them, and the
connections each user may hold open.

Pure bookkeeping, no I/O: the websocket channels report what they queue and what was
written, and are told which of them to close.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["SHARED_MIN_BYTES", "ConnectionCounter", "Holder", "PendingBudget", "eviction_order"]

#: A message at least this large is handed to the socket by reference, so clients that
#: wait for the same one share its memory, and the budget counts it once. A smaller one
#: is copied into each client's socket buffer (Tornado coalesces writes up to 2048 bytes),
#: so it counts once per client.
SHARED_MIN_BYTES = 4096


class Holder(Protocol):
    """A connection with bytes queued for its client."""

    @property
    def pending_bytes(self) -> int:
        """Bytes queued for the client and not yet written to its socket."""
        ...

    @property
    def stuck_since(self) -> float:
        """When (``time.monotonic()``) it last had nothing pending."""
        ...

    def evict(self) -> None:
        """Close the connection to free its bytes; it releases them at once."""
        ...


H = TypeVar("H", bound=Holder)


def eviction_order(holders: Iterable[H]) -> list[H]:
    """The holders to close first: those holding the most, and among equals those that
    have been waiting longest. A client that reads, even one whose whole-document sync
    is being sent right now, empties its queue often, so it comes after a client that
    reads nothing and holds as much. Holders with nothing pending are left out: closing
    them frees nothing."""
    candidates = [h for h in holders if h.pending_bytes > 0]
    return sorted(candidates, key=lambda h: (-h.pending_bytes, h.stuck_since))


class PendingBudget:
    """The bytes waiting to be sent on all room websockets of the server, within one
    budget: a message that would take them over it first closes the connections that
    hold the most (:func:`eviction_order`) until it fits.

    What is counted is memory: a large message queued for many clients (an update, the
    kept whole-document answer) is one object that they all reference, and counts once
    while any of them holds it; a small one counts once per client.

    Attributes:
        max_bytes: The budget; 0 or less: no budget.
        total: The bytes held now.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._holders: set[Holder] = set()
        #: Shared messages held, by id: the message (which keeps its id from being
        #: reused) and how many holders hold it.
        self._shared: dict[int, tuple[bytes, int]] = {}

    def __len__(self) -> int:
        return len(self._holders)

    def add(self, holder: Holder) -> None:
        self._holders.add(holder)

    def remove(self, holder: Holder, held: Iterable[bytes]) -> None:
        """``holder`` is gone, with the messages it held."""
        self._holders.discard(holder)
        self.release(held)

    def cost(self, message: bytes) -> int:
        """What queueing ``message`` once more would add to :attr:`total`."""
        if len(message) >= SHARED_MIN_BYTES and id(message) in self._shared:
            return 0
        return len(message)

    def admit(self, holder: Holder, message: bytes) -> bool:
        """Make room for ``holder`` to queue ``message``, closing the connections that
        hold the most if need be; whether ``holder`` may queue it (not if it was closed
        itself). When nothing is left to close, one message larger than the budget
        still goes: a notebook larger than the budget must still sync."""
        if self.max_bytes <= 0 or self.total + self.cost(message) <= self.max_bytes:
            return True
        for victim in eviction_order(self._holders):
            victim.evict()
            if victim is holder:
                return False
            if self.total + self.cost(message) <= self.max_bytes:
                break
        return True

    def hold(self, message: bytes) -> None:
        """One more holder queued ``message``."""
        size = len(message)
        if size < SHARED_MIN_BYTES:
            self.total += size
            return
        key = id(message)
        entry = self._shared.get(key)
        if entry is None:
            self._shared[key] = (message, 1)
            self.total += size
        else:
            self._shared[key] = (message, entry[1] + 1)

    def release(self, messages: Iterable[bytes]) -> None:
        """One holder of each of ``messages`` wrote it to its socket, or dropped it."""
        for message in messages:
            size = len(message)
            if size < SHARED_MIN_BYTES:
                self.total -= size
                continue
            key = id(message)
            _, count = self._shared[key]
            if count == 1:
                del self._shared[key]
                self.total -= size
            else:
                self._shared[key] = (message, count - 1)


class ConnectionCounter:
    """Open room websocket connections per user, at most ``max_per_user`` each
    (0 or less: no limit)."""

    def __init__(self, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._open: Counter[str] = Counter()

    def open(self, user: str) -> bool:
        """Count one more connection of ``user``; False (and not counted) over the limit."""
        if 0 < self.max_per_user <= self._open[user]:
            return False
        self._open[user] += 1
        return True

    def close(self, user: str) -> None:
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def count(self, user: str) -> int:
        return self._open[user]
