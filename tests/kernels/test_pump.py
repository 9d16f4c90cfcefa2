"""The pump hands each batch over and keeps nothing of it (kernels/pump.py).

A unit test with a stand-in connection: the pump's only job here is not to hold on to
the last batch while it waits for the next, which may come hours later.
"""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from typing import Any

from ydoc_outputs.kernels.pump import IopubPump


class Message(dict[str, Any]):
    """A message that can be weakly referenced (a plain dict cannot)."""


class Reader:
    def __init__(self) -> None:
        self.arrived: asyncio.Queue[Message] = asyncio.Queue()

    async def first(self) -> list[Message]:
        return [await self.arrived.get()]

    async def more(self, limit: int) -> list[Message]:
        taken: list[Message] = []
        while len(taken) < limit and not self.arrived.empty():
            taken.append(self.arrived.get_nowait())
        return taken


class Connection:
    kernel_id = "k"

    def __init__(self) -> None:
        self.reader = Reader()
        self.noted = 0

    def note_activity(self, messages: list[Message]) -> None:
        self.noted += len(messages)


async def test_the_last_batch_is_not_kept_while_waiting_for_output() -> None:
    connection = Connection()
    handled: list[weakref.ref[Message]] = []

    async def handle(batch: list[Any]) -> None:
        handled.extend(weakref.ref(message) for message in batch)

    pump = IopubPump(connection, handle, batch_interval=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(pump.run())
    try:
        for i in range(3):  # a batch of three: one read, then what else had arrived
            connection.reader.arrived.put_nowait(Message(text="x" * 1_000_000, i=i))
        await pump.drain()
        assert len(handled) == 3
        assert connection.noted == 3  # jupyter_server's activity watch was told of them
        # The pump now waits for the next message; nothing may keep these alive.
        await asyncio.sleep(0.05)
        gc.collect()
        assert [ref() for ref in handled] == [None, None, None]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_first_output_after_quiet_is_handed_over_at_once() -> None:
    """No pause before the first output after quiet; the output right after it waits
    for the batch interval and comes as one batch."""
    connection = Connection()
    handled: list[tuple[float, int]] = []

    async def handle(batch: list[Any]) -> None:
        if batch:
            handled.append((time.monotonic(), len(batch)))

    interval = 0.5
    pump = IopubPump(connection, handle, batch_interval=interval)  # type: ignore[arg-type]
    task = asyncio.create_task(pump.run())
    try:
        await asyncio.sleep(0.05)  # quiet: the pump waits for output
        sent = time.monotonic()
        connection.reader.arrived.put_nowait(Message(i=0))
        while not handled:
            await asyncio.sleep(0.001)
        assert handled[0][0] - sent < interval / 5
        for i in (1, 2):
            connection.reader.arrived.put_nowait(Message(i=i))
        while len(handled) < 2:
            await asyncio.sleep(0.001)
        assert handled[1][1] == 2
        assert handled[1][0] - handled[0][0] >= interval * 0.9
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
