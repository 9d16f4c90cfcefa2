"""The index of a notebook's cells that execute requests and the run order read (pure
logic on a real pycrdt document)."""

from __future__ import annotations

from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map

from ydoc_outputs.rooms.cells import CellIndex


def cell(cell_id: str, cell_type: str = "code") -> dict[str, Any]:
    fields: dict[str, Any] = {"execution_count": None, "outputs": []} if cell_type == "code" else {}
    return {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": "", **fields}


def notebook(*cells: dict[str, Any]) -> YNotebook:
    nb = YNotebook()
    nb.set({"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    return nb


def test_positions_count_code_cells_and_follow_inserts_and_deletes() -> None:
    nb = notebook(cell("a"), cell("m", "markdown"), cell("b"))
    index = CellIndex(nb.ycells)
    assert index.view().positions == {"a": 0, "b": 1}
    found = index.find("b")
    assert found is not None and found[1] == 1
    assert index.find("m") is not None and index.find("m")[1] == -1  # type: ignore[index]
    nb.ycells.insert(0, nb.create_ycell(cell("z")))
    assert index.view().positions == {"z": 0, "a": 1, "b": 2}
    del nb.ycells[1]
    assert index.view().positions == {"z": 0, "b": 1}
    assert index.find("a") is None


def test_a_clients_mark_is_seen_once_the_room_says_a_client_changed_a_cell() -> None:
    nb = notebook(cell("a"), cell("b"))
    index = CellIndex(nb.ycells)
    assert index.view().marked == set()
    # A page's update, applied to the room's document, then reported by the room.
    page = Doc()
    page.apply_update(nb.ydoc.get_update())
    page_cells = page.get("cells", type=type(nb.ycells))
    page_cell = page_cells[1]
    assert isinstance(page_cell, Map)
    page_cell["execution_state"] = "running"
    nb.ydoc.apply_update(page.get_update(nb.ydoc.get_state()))
    index.client_changed()
    assert index.view().marked == {"b"}
    # The server ends the cell: the mark goes without a rebuild being asked for.
    nb.ycells[1]["execution_state"] = "idle"
    assert index.view().marked == set()


def test_a_duplicated_id_is_found_at_its_first_cell() -> None:
    nb = notebook(cell("a"), cell("a"), cell("b"))
    index = CellIndex(nb.ycells)
    assert index.view().positions == {"a": 0, "b": 2}
