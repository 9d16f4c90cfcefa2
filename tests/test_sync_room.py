"""The whole-document answer to fresh clients, and the changes sent after it (rooms/sync.py).

Unit tests of the room's bookkeeping, with a stand-in for the websocket: the messages a
fresh client gets, applied in order to an empty document, must give the document as it
is now, and the document is encoded again only once the changes outgrow the answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Text, YMessageType, YSyncMessageType, handle_sync_message

from ydoc_outputs.rooms import sync
from ydoc_outputs.rooms.sync import FRESH_SYNC_STEP1, SyncRoom


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


async def test_the_answer_expires_once_no_fresh_client_came_for_a_while(monkeypatch) -> None:
    monkeypatch.setattr(sync, "FULL_SYNC_TTL", 0.5)
    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    text += "abc"
    room = SyncRoom(doc, lambda e, client: None)
    room.start()
    try:
        [whole] = await fresh_client(room)
        text += "d"
        for _ in range(5):  # a client every 0.15 s keeps it past its lifetime
            await asyncio.sleep(0.15)
            assert (await fresh_client(room))[0] is whole
        await asyncio.sleep(0.8)
        answer = await fresh_client(room)
        assert len(answer) == 1 and answer[0] is not whole
        assert applied(answer) == "abcd"
    finally:
        room.stop()
