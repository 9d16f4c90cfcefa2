"""The whole-document answer to fresh clients, and the changes sent after it (rooms/sync.py).

Unit tests of the room's bookkeeping, with a stand-in for the websocket: the messages a
fresh client gets, applied in order to an empty document, must give the document as it
is now; the document is encoded again only once the changes outgrow the answer, or the
rooms' shared budget of kept answers needs its bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pycrdt import (
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_update_message,
    handle_sync_message,
)

from ydoc_outputs.rooms import sync
from ydoc_outputs.rooms.awareness import AwarenessEntry, decode_message, encode_message
from ydoc_outputs.rooms.sync import FRESH_SYNC_STEP1, AnswerCache, SyncRoom


class Client:
    """A connection that sent one fresh sync step 1 and keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __aiter__(self) -> Any:
        async def messages() -> Any:
            yield FRESH_SYNC_STEP1

        return messages()

    def send_nowait(self, message: bytes) -> None:
        self.sent.append(message)

    def close(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed: {code} {reason}")


async def fresh_client(room: SyncRoom) -> list[bytes]:
    """What a fresh client gets in answer to its sync step 1."""
    client = Client()
    await room.serve(client)
    step1, *answer = client.sent  # the server's own sync step 1 comes first
    assert step1[:2] == bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP1])
    return answer


def applied(answer: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    for message in answer:
        assert message[0] == YMessageType.SYNC
        handle_sync_message(message[1:], doc)
    return str(text)


async def test_changes_follow_the_kept_answer_until_they_outgrow_it(monkeypatch) -> None:
    monkeypatch.setattr(sync, "TAIL_MAX_BYTES", 10_000)
    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    text += "x" * 50_000
    room = SyncRoom(doc, lambda e, client: None)
    room.start()
    try:
        [whole] = await fresh_client(room)
        assert whole[1] == YSyncMessageType.SYNC_STEP2
        assert applied([whole]) == str(text)

        for i in range(5):  # small changes: the same step 2, then one update
            text += f" {i}"
            first, *tail = await fresh_client(room)
            assert first is whole
            assert len(tail) == 1 and tail[0][1] == YSyncMessageType.SYNC_UPDATE
            assert applied([first, *tail]) == str(text)
            again = await fresh_client(room)  # nothing changed: the same messages
            assert again[0] is whole and again[1] is tail[0]

        del text[0:20_000]  # deletions travel in the tail too
        answer = await fresh_client(room)
        assert answer[0] is whole and applied(answer) == str(text)

        text += "y" * 20_000  # past the bound: the document is encoded again
        answer = await fresh_client(room)
        assert len(answer) == 1 and answer[0] is not whole
        assert applied(answer) == str(text)
    finally:
        room.stop()


def room_of(text: str, cache: AnswerCache) -> tuple[SyncRoom, Text]:
    doc: Doc[Any] = Doc()
    ytext = doc.get("text", type=Text)
    ytext += text
    room = SyncRoom(doc, lambda e, client: None, cache)
    room.start()
    return room, ytext


async def test_rooms_share_one_budget_the_answer_least_recently_sent_goes_first() -> None:
    cache = AnswerCache(max_bytes=25_000)
    first, first_text = room_of("a" * 10_000, cache)
    second, _ = room_of("b" * 10_000, cache)
    third, _ = room_of("c" * 10_000, cache)
    try:
        [one] = await fresh_client(first)
        [two] = await fresh_client(second)
        assert cache.bytes == len(one) + len(two)
        assert (await fresh_client(first))[0] is one  # kept; now the most recent

        [three] = await fresh_client(third)  # no room for three: two goes, not one
        assert cache.bytes == len(one) + len(three)
        assert (await fresh_client(first))[0] is one
        assert (await fresh_client(third))[0] is three
        again = await fresh_client(second)
        assert again[0] is not two and applied(again) == "b" * 10_000

        first_text += "!"  # a change travels after the kept answer, and counts nowhere
        answer = await fresh_client(first)
        assert applied(answer) == "a" * 10_000 + "!"
    finally:
        for room in (first, second, third):
            room.stop()
    assert cache.bytes == 0  # a stopped room keeps nothing


async def test_an_answer_over_the_budget_is_sent_not_kept() -> None:
    cache = AnswerCache(max_bytes=5_000)
    room, text = room_of("x" * 10_000, cache)
    try:
        [whole] = await fresh_client(room)
        text += "y"
        answer = await fresh_client(room)
        assert len(answer) == 1 and answer[0] is not whole
        assert applied(answer) == "x" * 10_000 + "y"
        assert cache.bytes == 0
    finally:
        room.stop()


async def test_changes_that_outgrow_the_answer_free_its_bytes(monkeypatch) -> None:
    monkeypatch.setattr(sync, "TAIL_MAX_BYTES", 1_000)
    cache = AnswerCache()
    room, text = room_of("x" * 10_000, cache)
    try:
        [whole] = await fresh_client(room)
        assert cache.bytes == len(whole)
        text += "y" * 2_000
        assert cache.bytes == 0  # dropped at once, not at the next fresh client
        assert applied(await fresh_client(room)) == str(text)
    finally:
        room.stop()


# -- awareness ----------------------------------------------------------------------------


class Connection:
    """A connected client whose messages the test hands in one by one; ``None`` closes it."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent: list[bytes] = []

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> bytes:
        message = await self.inbox.get()
        if message is None:
            raise StopAsyncIteration
        return message

    def send_nowait(self, message: bytes) -> None:
        self.sent.append(message)

    def close(self, code: int, reason: str) -> None:
        raise AssertionError(f"closed: {code} {reason}")

    def awareness(self) -> list[list[tuple[int, int, str]]]:
        """Each awareness update it was sent: (client id, clock, state) of each entry."""
        return [
            [(e.client_id, e.clock, e.state) for e in decode_message(m)]
            for m in self.sent
            if m[0] == YMessageType.AWARENESS
        ]


def hello(client_id: int, clock: int) -> bytes:
    return encode_message([AwarenessEntry(client_id, clock, f'{{"n":{clock}}}')])


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_awareness_goes_out_merged_once_per_interval() -> None:
    room = SyncRoom(Doc(), lambda e, client: None, awareness_interval=1.0)
    room.start()
    a, b = Connection(), Connection()
    serving = [asyncio.ensure_future(room.serve(c)) for c in (a, b)]
    try:
        await asyncio.sleep(0)  # both are in the room
        a.inbox.put_nowait(hello(1, 1))  # after a quiet moment: at once, to both
        await until(lambda: len(b.awareness()) == 1)
        assert a.awareness() == b.awareness() == [[(1, 1, '{"n":1}')]]
        for clock in range(2, 6):
            a.inbox.put_nowait(hello(1, clock))
            b.inbox.put_nowait(hello(2, clock))
        b.inbox.put_nowait(hello(2, 3))  # stale: dropped
        await asyncio.sleep(0.05)
        assert len(b.awareness()) == 1  # the rest waits for the interval
        await until(lambda: len(b.awareness()) == 2)
        merged = [[(1, 5, '{"n":5}'), (2, 5, '{"n":5}')]]
        assert a.awareness()[1:] == b.awareness()[1:] == merged
        a.inbox.put_nowait(None)  # a's connection closes without a goodbye
        await until(lambda: len(b.awareness()) == 3)
        assert b.awareness()[2] == [(1, 5, "null")]
        late = Connection()  # a new client gets the live states at once
        serving.append(asyncio.ensure_future(room.serve(late)))
        await asyncio.sleep(0)
        assert late.awareness() == [[(2, 5, '{"n":5}')]]
        late.inbox.put_nowait(None)
        b.inbox.put_nowait(None)
        await asyncio.gather(*serving)
    finally:
        room.stop()


async def test_with_no_interval_each_update_goes_out_at_once() -> None:
    room = SyncRoom(Doc(), lambda e, client: None, awareness_interval=0)
    room.start()
    a, b = Connection(), Connection()
    serving = [asyncio.ensure_future(room.serve(c)) for c in (a, b)]
    try:
        await asyncio.sleep(0)  # both are in the room
        for clock in (1, 2, 2, 3):
            a.inbox.put_nowait(hello(1, clock))
        a.inbox.put_nowait(None)
        await serving[0]
        expected = [[(1, c, f'{{"n":{c}}}')] for c in (1, 2, 3)] + [[(1, 3, "null")]]
        assert b.awareness() == expected
        b.inbox.put_nowait(None)
        await serving[1]
    finally:
        room.stop()


async def test_a_rooms_awareness_holds_the_clients_and_publishes_the_servers() -> None:
    """A document room's pycrdt ``Awareness`` (its document's ``awareness``, as
    jupyter-server-ydoc gives it to extensions): the clients' states reach it, and a
    state an extension sets on it, under a client id of its own as jupyter-ai's personas
    do, reaches every client, and goes when the extension removes it."""
    from jupyter_ydoc import YUnicode

    from ydoc_outputs.rooms.room import DocumentRoom
    from ydoc_outputs.store.documents import TEXT_FILE, RoomKey

    async def save(_room: DocumentRoom) -> None:
        return None

    room = DocumentRoom(RoomKey(TEXT_FILE, "f"), save, autosave_delay=60, awareness_interval=0)
    room.sync.start()
    assert isinstance(room.doc, YUnicode) and room.doc.awareness is room.awareness
    a = Connection()
    serving = asyncio.ensure_future(room.serve(a))
    try:
        await asyncio.sleep(0)
        a.inbox.put_nowait(hello(7, 1))
        await until(lambda: room.awareness.states.get(7) == {"n": 1})  # read: pulled
        # An extension that observes the awareness hears of a client's change at once.
        heard: list[list[int]] = []
        room.awareness.observe(
            lambda topic, change: heard.append(change[0]["updated"]) if topic == "change" else None
        )
        a.inbox.put_nowait(hello(7, 2))
        await until(lambda: [7] in heard)

        persona = room.awareness
        own = persona.client_id
        persona.client_id = 4242  # a client id of the extension's own
        try:
            # As PersonaAwareness does: an empty state (clock 0, which browsers ignore
            # from a client they do not know), then its user (clock 1).
            persona.set_local_state({})
            persona.set_local_state_field("user", {"name": "Jupyternaut"})
        finally:
            persona.client_id = own
        await until(lambda: any(4242 in [e[0] for e in u] for u in a.awareness()))
        entry = [e for u in a.awareness() for e in u if e[0] == 4242][-1]
        assert entry[2] == '{"user":{"name":"Jupyternaut"}}'

        persona.client_id = 4242
        try:
            persona.set_local_state(None)
        finally:
            persona.client_id = own
        await until(lambda: [e for u in a.awareness() for e in u if e[0] == 4242][-1][2] == "null")
    finally:
        a.inbox.put_nowait(None)
        await serving
        room.sync.stop()


class Writer(Client):
    """A connection that sends the updates it is given, then waits to be stopped."""

    def __init__(self, updates: list[bytes]) -> None:
        super().__init__()
        self.updates = updates
        self.stop = asyncio.Event()

    def __aiter__(self) -> Any:
        async def messages() -> Any:
            for update in self.updates:
                yield create_update_message(update)
            await self.stop.wait()

        return messages()


async def test_a_clients_update_goes_to_the_others_not_back_to_it() -> None:
    doc: Doc[Any] = Doc()
    doc.get("text", type=Text)
    room = SyncRoom(doc, lambda e, client: None)
    room.start()
    theirs: Doc[Any] = Doc()
    text = theirs.get("text", type=Text)
    text += "typed"
    writer, reader = Writer([theirs.get_update()]), Writer([])
    try:
        serving = [asyncio.ensure_future(room.serve(c)) for c in (reader, writer)]
        await asyncio.sleep(0.01)
        assert str(doc.get("text", type=Text)) == "typed"
        updates = [
            m
            for m in reader.sent
            if m[:2] == bytes([YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE])
        ]
        assert applied(updates) == "typed"
        assert not [m for m in writer.sent if m[1:2] == bytes([YSyncMessageType.SYNC_UPDATE])]
        text += " more"  # what the server itself writes goes to every client
        doc.apply_update(theirs.get_update(doc.get_state()))
        assert writer.sent[-1][1] == YSyncMessageType.SYNC_UPDATE
        writer.stop.set()
        reader.stop.set()
        await asyncio.gather(*serving)
    finally:
        room.stop()
