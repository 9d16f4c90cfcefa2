"""The server-wide budget of bytes waiting on the room websockets, and the per-user
connection count (pure bookkeeping: ydoc_outputs/rooms/budget.py)."""

from __future__ import annotations

from ydoc_outputs.rooms.budget import (
    SHARED_MIN_BYTES,
    ConnectionCounter,
    PendingBudget,
    eviction_order,
)


class FakeClient:
    """A connection holding messages, as WebsocketChannel reports them to the budget."""

    def __init__(self, budget: PendingBudget, name: str, stuck_since: float) -> None:
        self.budget = budget
        self.name = name
        self.stuck_since = stuck_since
        self.held: list[bytes] = []
        self.evicted = False
        budget.add(self)

    @property
    def pending_bytes(self) -> int:
        return sum(len(m) for m in self.held)

    def send(self, message: bytes) -> bool:
        if self.evicted or not self.budget.admit(self, message):
            return False
        self.held.append(message)
        self.budget.hold(message)
        return True

    def read(self) -> None:
        self.budget.release(self.held)
        self.held = []

    def evict(self) -> None:
        self.evicted = True
        self.budget.remove(self, self.held)
        self.held = []

    def __repr__(self) -> str:
        return self.name


def big(n: int) -> bytes:
    return bytes(n) + b"\x01"  # a distinct object each time


def test_eviction_order_is_most_held_then_longest_stuck() -> None:
    budget = PendingBudget(0)
    a, b, c, idle = (FakeClient(budget, n, t) for n, t in [("a", 5), ("b", 1), ("c", 3), ("i", 0)])
    a.held, b.held, c.held = [bytes(10)], [bytes(10)], [bytes(20)]
    # idle holds nothing: closing it would free nothing.
    assert eviction_order([a, b, c, idle]) == [c, b, a]


def test_a_large_message_queued_for_many_clients_counts_once() -> None:
    budget = PendingBudget(10 * SHARED_MIN_BYTES)
    clients = [FakeClient(budget, f"c{i}", i) for i in range(50)]
    update = big(5 * SHARED_MIN_BYTES)
    for client in clients:
        assert client.send(update)
    assert budget.total == len(update)
    small = b"\x00\x02\x05hello"
    for client in clients:
        assert client.send(small)
    assert budget.total == len(update) + 50 * len(small)  # copied into every socket buffer
    for client in clients:
        client.read()
    assert budget.total == 0


def test_going_over_closes_the_clients_holding_most_until_it_fits() -> None:
    budget = PendingBudget(100_000)
    stalled = [FakeClient(budget, f"stalled{i}", i) for i in range(3)]
    reader = FakeClient(budget, "reader", 10)
    for i, client in enumerate(stalled):
        assert client.send(big(30_000 - i))  # stalled0 holds most
    assert reader.send(big(5_000))
    assert budget.total == 90_000 + 5_001
    # 20 KB more for the reader: over by about 15 KB; the one client holding most goes.
    assert reader.send(big(20_000))
    assert [c.evicted for c in stalled] == [True, False, False]
    assert not reader.evicted
    assert budget.total <= budget.max_bytes


def test_among_equals_the_longest_stuck_goes_not_a_fresh_reader() -> None:
    """A reading client whose whole-document sync is pending holds as much as a client
    that never read it; the one waiting longest is closed."""
    budget = PendingBudget(int(1.5 * 1_000_000))
    stalled = FakeClient(budget, "stalled", stuck_since=1.0)
    fresh = FakeClient(budget, "fresh", stuck_since=50.0)
    assert stalled.send(big(1_000_000))  # each its own encoding of the document
    assert fresh.send(big(1_000_000))
    assert stalled.evicted and not fresh.evicted


def test_the_sender_holding_most_is_closed_and_its_message_dropped() -> None:
    budget = PendingBudget(100_000)
    other = FakeClient(budget, "other", 0)
    sender = FakeClient(budget, "sender", 5)
    assert other.send(big(10_000))
    assert sender.send(big(80_000))
    assert not sender.send(big(20_000))
    assert sender.evicted and not other.evicted
    assert budget.total == 10_001


def test_a_message_larger_than_the_budget_still_goes_when_nothing_else_is_held() -> None:
    """A notebook larger than the budget must still sync."""
    budget = PendingBudget(100_000)
    alone = FakeClient(budget, "alone", 0)
    assert alone.send(big(300_000))
    assert not alone.evicted


def test_no_budget() -> None:
    budget = PendingBudget(0)
    client = FakeClient(budget, "c", 0)
    assert client.send(big(10**7))
    assert not client.evicted


def test_connections_per_user() -> None:
    counter = ConnectionCounter(2)
    assert counter.open("alice") and counter.open("alice")
    assert not counter.open("alice")
    assert counter.open("bob")
    counter.close("alice")
    assert counter.open("alice")
    assert counter.count("alice") == 2
    unlimited = ConnectionCounter(0)
    assert all(unlimited.open("alice") for _ in range(1000))
