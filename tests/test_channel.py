"""A room websocket's queue of received messages (rooms/channel.py): frames go to the
room at once while it keeps up, and a flood is pushed back onto the sender's socket."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from ydoc_outputs.rooms.channel import MAX_QUEUED_MESSAGES, WebsocketChannel


def channel() -> WebsocketChannel:
    # The handler is only written to, and nothing here writes.
    return WebsocketChannel(cast(Any, object()), "room")


async def test_received_messages_are_taken_at_once_until_the_queue_is_full() -> None:
    ch = channel()
    taken = [ch.put_nowait(bytes([0, 2, i])) for i in range(MAX_QUEUED_MESSAGES + 1)]
    assert taken == [True] * MAX_QUEUED_MESSAGES + [False]
    # The room reads them in order, without waiting, and the sender may go on.
    assert await ch.__anext__() == bytes([0, 2, 0])
    assert ch.put_nowait(b"\x00\x02\xff")


async def test_a_full_queue_holds_the_sender_until_the_room_takes_one() -> None:
    ch = channel()
    for i in range(MAX_QUEUED_MESSAGES):
        assert ch.put_nowait(bytes([0, 2, i]))
    waiting = asyncio.ensure_future(ch.put(b"late"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await ch.__anext__()
    await asyncio.wait_for(waiting, 1)
    messages = [await ch.__anext__() for _ in range(MAX_QUEUED_MESSAGES)]
    assert messages[-1] == b"late"


async def test_a_message_after_the_end_is_dropped() -> None:
    ch = channel()
    ch.end(drop=False)
    assert ch.put_nowait(b"\x00\x02\x00")  # handed over, and dropped
    with pytest.raises(StopAsyncIteration):
        await ch.__anext__()
