"""When autosave serializes and writes a document (a real YNotebook and its Y
transactions; ``save`` and ``snapshot`` are this test's own functions)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools

import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Map, Text

from ydoc_outputs.store import autosave
from ydoc_outputs.store.autosave import Autosaver
from ydoc_outputs.ydoc.writer import SERVER_ORIGIN


class Disk:
    """A file, the saves written to it and the snapshots taken to compare with it."""

    def __init__(self, doc: YNotebook) -> None:
        self.doc = doc
        self.text = self.render()
        self.writes = 0
        self.snapshots = 0
        self.fail = False

    def render(self) -> str:
        return "|".join(str(cell["source"]) for cell in self.doc.get()["cells"])

    def snapshot(self) -> str:
        self.snapshots += 1
        return self.render()

    async def save(self) -> str:
        if self.fail:
            raise OSError("disk full")
        self.writes += 1
        self.text = self.render()
        return f"hash-{self.writes}"


def opened(source: str = "1") -> tuple[YNotebook, Disk, Autosaver]:
    """A room's document just loaded from its file, as DocumentRoom.start leaves it."""
    doc = YNotebook()
    doc.set({"cells": [{"cell_type": "code", "id": "c", "source": source, "metadata": {},
                        "outputs": [], "execution_count": None}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5})  # fmt: skip
    disk = Disk(doc)
    saver = Autosaver(doc, disk.snapshot, disk.save, delay=3600)
    saver.mark_on_disk(hashlib.sha256(disk.text.encode()).hexdigest())
    saver.start()
    return doc, disk, saver


def edit(doc: YNotebook, text: str) -> None:
    cell = doc.ycells[0]
    assert isinstance(cell, Map)
    source = cell["source"]
    assert isinstance(source, Text)
    source += text


async def test_an_unchanged_document_is_neither_serialized_nor_written() -> None:
    _, disk, saver = opened()
    assert await saver.save_now() is False
    await saver.stop()
    assert (disk.snapshots, disk.writes) == (0, 0)


async def test_a_change_of_state_alone_is_compared_and_not_written() -> None:
    doc, disk, saver = opened()
    with doc.ydoc.transaction():
        doc.dirty = True
    assert await saver.save_now() is False
    assert (disk.snapshots, disk.writes) == (1, 0)
    assert doc.dirty is False


async def test_kernel_output_is_written_without_comparing() -> None:
    doc, disk, saver = opened()
    with doc.ydoc.transaction(origin=SERVER_ORIGIN):
        edit(doc, " + 1")
    saver.mark_changed()  # what OutputWriter reports
    assert await saver.save_now() is True
    assert (disk.snapshots, disk.writes) == (0, 1)
    assert disk.text == "1 + 1"
    assert doc.hash == "hash-1"


async def test_its_own_write_of_the_hash_does_not_call_for_another_save() -> None:
    doc, disk, saver = opened()
    edit(doc, " + 1")
    assert await saver.save_now() is True
    assert saver._timer is not None  # armed by the edit, before this save
    saver._timer.cancel()
    saver._timer = None
    assert await saver.save_now() is False
    assert saver._timer is None
    await saver.stop()
    assert (disk.snapshots, disk.writes) == (1, 1)


async def test_an_edit_made_during_a_save_is_saved_next() -> None:
    doc, disk, saver = opened()
    edit(doc, " + 1")
    saver.mark_changed()
    writing = asyncio.Event()
    proceed = asyncio.Event()
    save = disk.save

    async def slow_save() -> str:
        writing.set()
        await proceed.wait()
        return await save()

    saver._save = slow_save
    task = asyncio.ensure_future(saver.save_now())
    await writing.wait()
    edit(doc, " + 2")  # arrives while the file is being written
    proceed.set()
    assert await task is True
    saver._save = save
    assert await saver.save_now() is True
    assert disk.text == "1 + 1 + 2"


async def test_a_failed_save_is_tried_again() -> None:
    doc, disk, saver = opened()
    edit(doc, " + 1")
    saver.mark_changed()
    disk.fail = True
    with pytest.raises(OSError):
        await saver.save_now()
    disk.fail = False
    await saver.stop()  # no change since: the room's last save still writes it
    assert (disk.writes, disk.text) == (1, "1 + 1")


async def test_a_restored_document_is_compared_with_the_file() -> None:
    _, disk, saver = opened()
    saver.check_soon()
    assert await saver.save_now() is False  # the store held nothing newer
    assert (disk.snapshots, disk.writes) == (1, 0)
    await saver.stop()


async def test_saves_are_spaced_by_their_own_cost_while_changes_keep_coming() -> None:
    """A slow save (a big notebook) is followed by a pause of SAVE_SPACING times its
    length, however often the document changes; the last change still reaches disk."""
    doc, disk, _ = opened()
    loop = asyncio.get_running_loop()
    spans: list[tuple[float, float]] = []

    async def slow_save() -> str:
        start = loop.time()
        await asyncio.sleep(0.03)
        spans.append((start, loop.time()))
        return await disk.save()

    saver = Autosaver(doc, disk.snapshot, slow_save, delay=0.01)
    saver.start()
    try:
        for i in range(100):  # a change every 10 ms for a second
            edit(doc, str(i % 10))
            saver.mark_changed()
            await asyncio.sleep(0.01)
        for _ in range(1000):  # up to 10 s, on a loaded machine
            if disk.text == disk.render():
                break
            await asyncio.sleep(0.01)
        assert disk.text == disk.render()
    finally:
        await saver.stop()
    # Without the spacing: a save every 40 ms or so, about 25 of them.
    assert 2 <= len(spans) <= 5, spans
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert next_start - end >= autosave.SAVE_SPACING * (end - start) - 0.005


async def test_an_infinite_delay_saves_only_when_asked() -> None:
    """jupyter_server_ydoc's ``document_save_delay = None``: no autosave, not even when
    the room closes; a client's save request (Ctrl+S) still writes."""
    doc = YNotebook()
    doc.set({"cells": [{"cell_type": "code", "id": "c", "source": "1", "metadata": {},
                        "outputs": [], "execution_count": None}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5})  # fmt: skip
    disk = Disk(doc)
    saver = Autosaver(doc, disk.snapshot, disk.save, delay=float("inf"))
    saver.start()
    edit(doc, " + 1")
    assert saver._timer is None
    await saver.stop()
    assert disk.writes == 0
    assert await saver.save_now() is True
    assert disk.text == "1 + 1"


async def test_typing_is_saved_once_it_pauses_and_output_while_it_streams() -> None:
    """Edits are saved a delay after the last one (as jupyter_server_ydoc does): a save
    while the user types moves the file's hash away from the page's, and a Ctrl+S just
    after typing then shows JupyterLab's "File Changed" dialog. Kernel output is saved a
    delay after it began, however long it streams."""
    doc, disk, _ = opened()
    saver = Autosaver(doc, disk.snapshot, disk.save, delay=0.5)
    saver.start()
    try:
        for i in range(60):  # a keystroke every 10 ms for 0.6 s, more than the delay
            edit(doc, str(i % 10))
            await asyncio.sleep(0.01)
        assert disk.writes == 0  # none while typing
        for _ in range(500):
            if disk.writes:
                break
            await asyncio.sleep(0.01)
        assert disk.writes == 1 and disk.text == disk.render()
    finally:
        await saver.stop()

    saver = Autosaver(doc, disk.snapshot, disk.save, delay=0.05)
    saver.start()
    try:
        for i in range(40):  # output every 10 ms for 0.4 s
            edit(doc, str(i % 10))
            saver.mark_changed()
            await asyncio.sleep(0.01)
        assert disk.writes >= 3  # saved while it streamed
    finally:
        await saver.stop()
    assert disk.text == disk.render()
