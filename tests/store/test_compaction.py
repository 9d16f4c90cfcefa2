"""A room's stored history is compacted while the room stays open (a real SQLite store
and real Y documents; the thresholds are made small)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Text

from ydoc_outputs.store import persistence
from ydoc_outputs.store.persistence import RoomPersistence
from ydoc_outputs.store.ystore import UpdateStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[UpdateStore]:
    store = UpdateStore(tmp_path / "updates.db")
    await store.start()
    yield store
    await store.stop()


def text_of(updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    doc["out"] = Text()
    for update in updates:
        doc.apply_update(update)
    return str(doc["out"])


async def printing(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch, lines: int
) -> tuple[Doc[Any], Text, RoomPersistence]:
    monkeypatch.setattr(persistence, "COMPACT_MIN_BYTES", 2000)
    doc: Doc[Any] = Doc()
    doc["out"] = out = Text()
    room = RoomPersistence(store, "doc", doc)
    room.start(doc.get_update())
    for i in range(lines):
        out += f"line {i}\n"
        if i % 50 == 0:
            # Deleting what was printed, as a progress bar or a truncated cell does:
            # the history grows while the document does not.
            del out[: len(out) // 2]
        await asyncio.sleep(0.0005)  # a kernel's pace, which the store keeps up with
    return doc, out, room


async def test_history_stays_bounded_and_restores_the_same_document(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc, out, room = await printing(store, monkeypatch, 1000)
    await room.stop(squash_older_than=None)
    assert room.compactions > 3
    stored = await store.load("doc")
    assert text_of(stored) == str(out)
    # Without compaction: about 35 KB of history for a document of 1 KB.
    size = sum(len(update) for update in stored)
    assert size < 3 * len(doc.get_update()) + 2 * 2000


async def test_updates_made_while_compacting_are_kept(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, room = await printing(store, monkeypatch, 300)
    # Make the store slow, so that updates arrive while a compaction is being written.
    original = store._compact

    def slow_compact(*args: Any) -> int:
        import time

        time.sleep(0.05)
        return original(*args)

    monkeypatch.setattr(store, "_compact", slow_compact)
    before = room.compactions
    for i in range(300):
        out += f"more {i}\n"
        await asyncio.sleep(0.001)
    await room.stop(squash_older_than=None)
    assert room.compactions > before
    assert text_of(await store.load("doc")) == str(out)


async def test_a_restored_room_compacts_against_what_it_restored(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, room = await printing(store, monkeypatch, 500)
    await room.stop(squash_older_than=None)
    again: Doc[Any] = Doc()
    again["out"] = Text()
    reopened = RoomPersistence(store, "doc", again)
    assert await reopened.restore()
    assert str(again["out"]) == str(out)
    reopened.start()
    more = again["out"]
    assert isinstance(more, Text)
    for i in range(500):
        more += f"again {i}\n"
        if i % 50 == 0:
            del more[: len(more) // 2]
        await asyncio.sleep(0.0005)
    await reopened.stop(squash_older_than=None)
    assert reopened.compactions > 0
    assert text_of(await store.load("doc")) == str(more)


async def test_an_opened_document_is_stored_with_its_first_change(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc: Doc[Any] = Doc()
    doc["out"] = out = Text("from the file\n")
    room = RoomPersistence(store, "doc", doc)
    room.start(doc.get_update())
    await asyncio.sleep(0.05)
    assert await store.load("doc") == []  # the file holds it all, so far
    out += "printed\n"
    await room.stop(squash_older_than=None)
    assert text_of(await store.load("doc")) == "from the file\nprinted\n"


async def test_an_unchanged_document_is_never_stored_or_stored_after_a_delay(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc: Doc[Any] = Doc()
    doc["out"] = Text("from the file\n")
    room = RoomPersistence(store, "doc", doc)
    room.start(doc.get_update())
    await room.stop(squash_older_than=None)
    assert await store.load("doc") == []

    monkeypatch.setattr(persistence, "BASE_DELAY", 0.01)
    room = RoomPersistence(store, "doc", doc)
    room.start(doc.get_update())
    await asyncio.sleep(0.05)  # the delay passes (timers run in order)
    await room.stop(squash_older_than=None)  # waits for what was queued
    assert text_of(await store.load("doc")) == "from the file\n"


async def test_updates_made_together_are_appended_in_one_batch(
    store: UpdateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends: list[int] = []
    append = store.append

    async def counting(doc: str, updates: list[bytes]) -> None:
        appends.append(len(updates))
        await append(doc, updates)

    monkeypatch.setattr(store, "append", counting)
    doc: Doc[Any] = Doc()
    doc["out"] = out = Text()
    room = RoomPersistence(store, "doc", doc)
    room.start()
    for i in range(50):  # a Run All's transactions, each handed to the store's thread
        out += f"cell {i}\n"
        await asyncio.sleep(0)
    await asyncio.sleep(persistence.STORE_DELAY * 3)
    assert appends == [50]
    out += "one more\n"
    await room.flush()  # does not wait for the delay
    assert appends == [50, 1]
    assert text_of(await store.load("doc")) == str(out)
    await room.stop(squash_older_than=None)
