"""The update guard against pycrdt alone: what it admits, refuses, and what it checks."""

from __future__ import annotations

import random
from typing import Any

import nbformat
import pytest
from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Text

from ydoc_outputs.store.notebook import (
    InvalidNotebook,
    check_notebook_shape,
    load_notebook,
    notebook_json,
)
from ydoc_outputs.ydoc.guard import Touched, UpdateGuard, UpdateRefused

from ..test_hostile import panicking_update

NOTEBOOK: dict[str, Any] = {
    "cells": [
        {"cell_type": "code", "id": f"c{i}", "source": f"x = {i}", "metadata": {},
         "outputs": [], "execution_count": None}
        for i in range(3)
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip


class Room:
    """A room's notebook with its guard, and a client's copy of it."""

    def __init__(self) -> None:
        self.server = YNotebook()
        load_notebook(self.server, NOTEBOOK)
        self.touched: list[Touched] = []
        self.guard = UpdateGuard(self.server.ydoc, self._check)

    def _check(self, doc: Doc, touched: Touched, before: Doc) -> None:
        self.touched.append(touched)
        check_notebook_shape(doc, touched, before)

    def client(self) -> YNotebook:
        nb = YNotebook()
        nb.ydoc.apply_update(self.server.ydoc.get_update())
        return nb

    def send(self, client: YNotebook, edit: Any) -> None:
        """Make ``edit`` on ``client``; admit its update, then apply it like the room."""
        before = client.ydoc.get_state()
        edit(client)
        update = client.ydoc.get_update(before)
        self.guard.admit(update)
        self.server.ydoc.apply_update(update)


def test_typing_is_admitted_without_checking_cells():
    room = Room()
    client = room.client()

    def type_(nb: YNotebook) -> None:
        source = nb.ycells[1]["source"]
        source += " + 1"

    room.send(client, type_)
    assert room.server.get_cell(1)["source"] == "x = 1 + 1"
    assert room.touched == []  # a Text edit cannot break the shape: no check at all


def test_only_the_touched_cells_are_checked():
    room = Room()
    client = room.client()
    room.send(client, lambda nb: nb.ycells[2]["metadata"].__setitem__("tags", ["a"]))
    room.send(client, lambda nb: nb.ycells[0]["outputs"].append(Map({"output_type": "stream",
              "name": "stdout", "text": Text("hi\n")})))  # fmt: skip
    room.send(client, lambda nb: nb.ycells.insert(1, Map({"cell_type": "markdown",
              "id": "md", "source": Text("# t"), "metadata": Map()})))  # fmt: skip
    assert [t.cells for t in room.touched] == [{2: False}, {0: True}, {1: True}]
    assert [cell["id"] for cell in room.server.get()["cells"]] == ["c0", "md", "c1", "c2"]


def test_a_mark_changes_the_structure_but_needs_no_shape_check():
    room = Room()
    client = room.client()
    room.send(client, lambda nb: nb.ycells[1].__setitem__("execution_state", "running"))
    assert room.touched == []  # nbformat has no execution_state: nothing to check
    assert room.guard.changed_structure  # but the cell index must see the mark
    # A mark with another change of the same cell is checked as any change.
    with pytest.raises(UpdateRefused, match="nbformat"):

        def mark_and_break(nb: YNotebook) -> None:
            nb.ycells[2]["execution_state"] = "idle"
            nb.ycells[2]["execution_count"] = "x"

        room.send(client, mark_and_break)
    assert [t.cells for t in room.touched] == [{2: False}]


def test_the_shadow_follows_what_the_server_and_other_clients_wrote():
    room = Room()
    alice, bob = room.client(), room.client()
    room.send(alice, lambda nb: nb.ycells[0]["metadata"].__setitem__("a", 1))
    # The server writes output directly, the guard never sees it ...
    with room.server.ydoc.transaction():
        output = {"output_type": "stream", "name": "stdout", "text": Text("out")}
        room.server.ycells[2]["outputs"].append(Map(output))
    bob.ydoc.apply_update(room.server.ydoc.get_update(bob.ydoc.get_state()))
    # ... but a client's edit of that output is checked against it.
    room.send(bob, lambda nb: nb.ycells[2]["outputs"][0].__setitem__("name", "stderr"))
    with pytest.raises(UpdateRefused, match="nbformat"):
        room.send(bob, lambda nb: nb.ycells[2]["outputs"][0].__setitem__("name", 5))
    assert room.server.get_cell(2)["outputs"][0]["name"] == "stderr"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda nb: nb.ycells.append("text"), "not a map"),
        (lambda nb: nb.ycells[0].__setitem__("source", 3), "nbformat"),
        (lambda nb: nb.ycells[1].__setitem__("cell_type", "x"), "nbformat"),
        (lambda nb: nb.ycells[1].__setitem__("execution_count", "one"), "nbformat"),
        (lambda nb: nb.ycells[0]["outputs"].append(Map({"output_type": "x"})), "nbformat"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat_minor", "x"), "nbformat"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("metadata", 1), "nbformat"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("metadata", "x"), "nbformat"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("metadata", [1]), "nbformat"),
        # Each once passed: the check normalized the version the writer then choked on.
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat", "x"), "nbformat "),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat", None), "nbformat "),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat", 3), "nbformat "),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat", True), "nbformat "),
        (lambda nb: nb.ydoc.get("meta", type=Map).pop("nbformat"), "nbformat "),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat_minor", -1), "minor"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat_minor", 4), "minor"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat_minor", 10**6), "minor"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat_minor", None), "minor"),
        (lambda nb: nb.ydoc.get("meta", type=Map).__setitem__("nbformat_minor", "5"), "minor"),
    ],
)
def test_shape_breaking_updates_are_refused(edit: Any, reason: str):
    room = Room()
    before = room.server.get()
    with pytest.raises(UpdateRefused, match=reason):
        room.send(room.client(), edit)
    assert room.server.get() == before
    # A later client update is checked against the room's document, not the refused one.
    room.send(room.client(), lambda nb: nb.ycells[0]["metadata"].__setitem__("ok", True))
    assert room.server.get_cell(0)["metadata"] == {"ok": True}


def test_a_panicking_update_is_refused_and_the_next_one_admitted():
    room = Room()
    client = room.client()
    with pytest.raises(UpdateRefused, match="panicked"):
        room.guard.admit(panicking_update(room.server.ydoc))
    room.send(client, lambda nb: nb.ycells[0]["metadata"].__setitem__("after", 1))
    assert room.server.get_cell(0)["metadata"] == {"after": 1}


def test_an_undecodable_update_is_refused():
    guard = UpdateGuard(Doc())
    with pytest.raises(UpdateRefused, match="not a valid update"):
        guard.admit(b"\x01\x05garbage")


def test_a_text_file_guard_checks_no_shape():
    doc = Doc()
    guard = UpdateGuard(doc)
    client = Doc()
    client.get("cells", type=Map)["x"] = "anything"
    guard.admit(client.get_update())


def test_what_the_guard_admits_the_writer_writes():
    """A version that Yjs sends as a float is what the writer writes too."""
    room = Room()
    room.send(room.client(), lambda nb: nb.ydoc.get("meta", type=Map).__setitem__(
        "nbformat_minor", 5.0))  # fmt: skip
    written = nbformat.reads(notebook_json(room.server), as_version=nbformat.NO_CONVERT)
    assert (written.nbformat, written.nbformat_minor) == (4, 5)
    nbformat.validate(written)
    assert [cell.id for cell in written.cells] == ["c0", "c1", "c2"]


@pytest.mark.parametrize(("minor", "loaded"), [(0, 5), (4, 5), (5, 5), (10**6, 5), (-1, 5)])
def test_a_file_is_loaded_as_a_version_the_writer_writes(minor: int, loaded: int):
    nb = YNotebook()
    load_notebook(nb, {**NOTEBOOK, "nbformat_minor": minor})
    assert nbformat.reads(notebook_json(nb), as_version=nbformat.NO_CONVERT).nbformat_minor == (
        loaded
    )


def test_the_writer_refuses_a_version_it_cannot_write():
    nb = YNotebook()
    load_notebook(nb, NOTEBOOK)
    nb.ydoc.get("meta", type=Map)["nbformat"] = "x"
    with pytest.raises(InvalidNotebook, match="nbformat must be 4"):
        notebook_json(nb)


def test_metadata_invalid_in_the_file_does_not_block_edits():
    """Old tools wrote notebooks whose metadata nbformat refuses (jupyter_server opens and
    saves them with a warning): edits of their cells and metadata are admitted, but an
    update cannot make valid metadata invalid."""
    room = Room()
    load_notebook(room.server, {**NOTEBOOK, "metadata": {"language_info": {"version": 3}}})
    client = room.client()
    room.send(client, lambda nb: nb.ycells[0]["metadata"].__setitem__("tags", ["a"]))
    room.send(client, lambda nb: nb.ydoc.get("meta", type=Map)["metadata"].__setitem__("k", 1))
    assert room.server.get()["metadata"]["k"] == 1
    room.send(client, lambda nb: nb.ydoc.get("meta", type=Map)["metadata"].__setitem__(
        "language_info", {"name": "python"}))  # fmt: skip
    with pytest.raises(UpdateRefused, match="nbformat"):
        room.send(client, lambda nb: nb.ydoc.get("meta", type=Map)["metadata"].__setitem__(
            "language_info", {"version": 3}))  # fmt: skip


def _updates(client: YNotebook, *edits: Any) -> list[bytes]:
    """Make each edit on ``client`` in turn; return the update of each."""
    updates = []
    for edit in edits:
        before = client.ydoc.get_state()
        edit(client)
        updates.append(client.ydoc.get_update(before))
    return updates


def test_an_update_that_depends_on_one_the_room_lacks_is_refused():
    room = Room()
    client = room.client()
    first, second = _updates(
        client,
        lambda nb: nb.ycells[0]["metadata"].__setitem__("a", 1),
        lambda nb: nb.ycells[0]["metadata"].__setitem__("b", 2),
    )
    with pytest.raises(UpdateRefused, match="depends on changes the room does not have"):
        room.guard.admit(second)
    # In order, both are admitted.
    for update in (first, second):
        room.guard.admit(update)
        room.server.ydoc.apply_update(update)
    assert room.server.get_cell(0)["metadata"] == {"a": 1, "b": 2}


def test_a_pending_change_never_reaches_the_room_unchecked():
    """A shape-breaking change that would wait in the room's document for the change it
    builds on, then arrive with it, past a shadow rebuilt in between (as the model walk
    found: 'source=42 was admitted')."""
    room = Room()
    client = room.client()
    first, breaking = _updates(
        client,
        lambda nb: nb.ycells[0]["metadata"].__setitem__("a", 1),
        lambda nb: nb.ycells[1].__setitem__("source", 42),
    )
    with pytest.raises(UpdateRefused, match="depends on"):
        room.guard.admit(breaking)
    # Another client's refused update rebuilds the shadow.
    with pytest.raises(UpdateRefused):
        room.send(room.client(), lambda nb: nb.ycells[2].__setitem__("source", 7))
    room.guard.admit(first)
    room.server.ydoc.apply_update(first)
    assert room.server.get_cell(1)["source"] == "x = 1"
    assert room.server.get_cell(0)["metadata"] == {"a": 1}
    nbformat.validate(nbformat.reads(notebook_json(room.server), as_version=4))


def test_deleting_what_the_room_lacks_is_refused():
    room = Room()
    client = room.client()
    _, deleted = _updates(
        client,
        lambda nb: nb.ycells[0]["metadata"].__setitem__("tmp", "x"),
        lambda nb: nb.ycells[0]["metadata"].pop("tmp"),
    )
    with pytest.raises(UpdateRefused, match="deletes changes the room does not have"):
        room.guard.admit(deleted)
    # Both at once (as a reconnecting client sends them) are a change the room can have.
    both = client.ydoc.get_update(room.server.ydoc.get_state())
    room.guard.admit(both)
    room.server.ydoc.apply_update(both)
    assert room.server.get_cell(0)["metadata"] == {}


def test_a_state_vector_is_split_as_lib0_reads_it():
    """The regex split of a state vector (used for updates that delete) gives the clock
    of every client, whatever the sizes of their varUints."""
    from pycrdt import write_var_uint

    from ydoc_outputs.rooms.protocol import FrameReader
    from ydoc_outputs.ydoc.guard import _state_entries, _var_uint

    rng = random.Random(5)
    for _ in range(50):
        bits = [7, 14, 32, 53]
        entries = {rng.getrandbits(rng.choice(bits)): rng.getrandbits(rng.choice(bits[:3]))
                   for _ in range(rng.randrange(300))}  # fmt: skip
        state = write_var_uint(len(entries)) + b"".join(
            write_var_uint(c) + write_var_uint(k) for c, k in entries.items()
        )
        reader = FrameReader(state)
        assert {reader.var_uint(): reader.var_uint() for _ in range(reader.var_uint())} == entries
        split = _state_entries(state)
        assert {_var_uint(c): _var_uint(k) for c, k in split.items()} == entries
