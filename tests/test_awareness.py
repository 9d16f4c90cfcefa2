"""The awareness wire format and a room's merged states (rooms/awareness.py).

pycrdt's ``Awareness`` implements y-protocols' ``applyAwarenessUpdate``, the code every
browser runs: it stands for the pages here. What the room merges and sends must leave
each page with the states it would hold had it received every message itself.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pycrdt import Awareness, Doc, create_awareness_message

from ydoc_outputs.rooms.awareness import (
    NULL_STATE,
    AwarenessEntry,
    AwarenessStates,
    decode_message,
    decode_update,
    encode_message,
    encode_update,
)
from ydoc_outputs.rooms.protocol import FrameError


def entry(client_id: int, clock: int, state: Any) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, json.dumps(state, separators=(",", ":")))


class Page:
    """A browser's view of the room's awareness (y-protocols' rules, via pycrdt)."""

    def __init__(self) -> None:
        self.awareness = Awareness(Doc())
        self.awareness.set_local_state(None)  # only the others' states matter here

    def receive(self, entries: list[AwarenessEntry]) -> None:
        self.awareness.apply_awareness_update(encode_update(entries), "remote")

    @property
    def states(self) -> dict[int, Any]:
        return dict(self.awareness.states)


def test_several_entries_round_trip_and_match_y_protocols_encoding() -> None:
    entries = [entry(1, 3, {"user": {"name": "é漢🙂"}}), entry(2**53 - 1, 0, None), entry(7, 1, {})]
    message = encode_message(entries)
    assert decode_message(message) == entries
    # What pycrdt (as y-protocols) encodes, we read; what we encode, it reads.
    awareness = Awareness(Doc())
    awareness.set_local_state({"cursor": [1, 2]})
    theirs = awareness.encode_awareness_update([awareness.client_id])
    [ours] = decode_update(theirs)
    assert (ours.client_id, ours.clock, json.loads(ours.state)) == (
        awareness.client_id,
        1,
        {"cursor": [1, 2]},
    )
    assert encode_message([ours]) == create_awareness_message(theirs)
    page = Page()
    page.receive(entries)
    assert page.states == {1: {"user": {"name": "é漢🙂"}}, 7: {}}


def test_malformed_updates_raise_frame_errors() -> None:
    good = encode_message([entry(5, 1, {})])
    for bad in (good[:-1], good + b"\x00", b"\x00" + good[1:], b"\x01\x02\x02\x05", b""):
        with pytest.raises(FrameError):
            decode_message(bad)
    # A null state written with JSON whitespace around it is a removal all the same.
    [spaced] = decode_update(b"\x01\x05\x02\x06 null\n")
    assert spaced.removed and spaced.state == NULL_STATE


def test_the_latest_clock_wins_and_changes_keep_only_it() -> None:
    states: AwarenessStates[str] = AwarenessStates()
    assert states.apply([entry(1, 1, {"n": 1}), entry(2, 1, {"n": 1})], "a") == 2
    assert states.apply([entry(1, 3, {"n": 3}), entry(1, 2, {"n": 2})], "a") == 1
    assert states.apply([entry(1, 3, {"n": "same clock"})], "a") == 0
    assert states.apply([entry(2, 0, {"n": 0})], "b") == 0
    assert states.apply([entry(9, 0, {"n": 0})], "b") == 0  # browsers start at 0 too
    assert states.take_changes() == [entry(1, 3, {"n": 3}), entry(2, 1, {"n": 1})]
    assert states.take_changes() == []
    assert sorted(states.states(), key=lambda e: e.client_id) == [
        entry(1, 3, {"n": 3}),
        entry(2, 1, {"n": 1}),
    ]


def test_null_removes_and_a_same_clock_null_removes_a_live_state() -> None:
    states: AwarenessStates[str] = AwarenessStates()
    states.apply([entry(1, 1, {"n": 1}), entry(2, 4, {"n": 4})], "a")
    states.take_changes()
    # A page's goodbye: its next clock, null. A peer's "that one is gone": same clock.
    assert states.apply([entry(1, 2, None), entry(2, 4, None)], "b") == 2
    assert states.states() == []
    assert states.take_changes() == [entry(1, 2, None), entry(2, 4, None)]
    # Once removed, the same clock is refused, null or not; the next one is taken.
    assert states.apply([entry(1, 2, None), entry(1, 2, {"n": "late"})], "a") == 0
    assert states.apply([entry(1, 3, {"n": 3})], "a") == 1
    assert states.states() == [entry(1, 3, {"n": 3})]


def test_a_closed_connection_loses_the_states_it_sent_last() -> None:
    states: AwarenessStates[str] = AwarenessStates()
    states.apply([entry(1, 5, {"page": 1}), entry(2, 1, {"page": 2})], "old")
    states.apply([entry(2, 2, {"page": "2 again"})], "new")  # reconnected before the close
    states.apply([entry(3, 1, {"page": 3})], "new")
    states.take_changes()
    assert states.count_sent_by("old") == 1 and states.count_sent_by("new") == 2
    assert states.remove_sent_by("old") == 1
    # Removed at the clock the pages hold (they drop a live state for a null at its
    # clock), so that the page's next clock, when it comes back, is taken.
    assert states.take_changes() == [entry(1, 5, None)]
    assert sorted(e.client_id for e in states.states()) == [2, 3]
    assert states.remove_sent_by("old") == 0
    assert states.apply([entry(1, 6, {"page": "1 back"})], "newer") == 1
    page = Page()
    page.receive([entry(1, 5, {"page": 1})])
    page.receive([entry(1, 5, None)])
    assert page.states == {}


def test_removed_clients_are_forgotten_past_the_bound() -> None:
    states: AwarenessStates[str] = AwarenessStates(max_removed=2)
    for client_id in (1, 2, 3):
        states.apply([entry(client_id, 5, {}), entry(client_id, 6, None)], "a")
    # 1 was forgotten (the oldest removal): its clock is unknown again.
    assert states.apply([entry(2, 6, {})], "a") == 0
    assert states.apply([entry(1, 6, {})], "a") == 1


@pytest.mark.parametrize("seed", range(20))
def test_pages_that_get_the_merged_changes_agree_with_pages_that_got_everything(
    seed: int,
) -> None:
    """Random updates from three connections about five clients, with stale clocks,
    goodbyes, peers' removals and closed connections: a page that got every message as
    sent (what the room echoed before), and one that gets only the room's merged changes
    every few messages, end with the states the room holds."""
    rng = random.Random(seed)
    states: AwarenessStates[int] = AwarenessStates()
    clocks = {client_id: 1 for client_id in range(1, 6)}
    everything, merged = Page(), Page()

    def send_changes() -> list[AwarenessEntry]:
        changes = states.take_changes()
        if changes:
            merged.receive(changes)
        return changes

    for step in range(300):
        sender = rng.randrange(3)
        if rng.random() < 0.05:  # the sender's connection closes
            send_changes()
            states.remove_sent_by(sender)
            everything.receive(send_changes())  # the room's removals reach every page
            continue
        update = []
        for _ in range(rng.randrange(1, 4)):
            client_id = rng.choice(list(clocks))
            clocks[client_id] = max(0, clocks[client_id] + rng.choice((-1, 0, 1, 1, 2)))
            state = rng.choice(({"step": step}, {"step": step, "x": [1]}, None))
            update.append(entry(client_id, clocks[client_id], state))
        states.apply(update, sender)
        everything.receive(update)
        if rng.random() < 0.3:
            send_changes()
    send_changes()
    expected = {e.client_id: json.loads(e.state) for e in states.states()}
    assert expected, "the test should end with some live states"
    assert everything.states == expected
    assert merged.states == expected
