"""The server's documents keep no undo history (pure logic, no server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jupyter_ydoc import YNotebook, YUnicode
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Text

from ydoc_outputs.store.documents import NOTEBOOK, TEXT_FILE, DocumentKind


def _notebook() -> tuple[YBaseDoc, Callable[[int], None]]:
    nb = YNotebook()
    nb.set({
        "cells": [{"cell_type": "code", "id": "a", "source": "x", "metadata": {},
                   "outputs": [], "execution_count": None}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    })  # fmt: skip

    def edit(i: int) -> None:
        nb.ycells[0]["source"] += str(i)

    return nb, edit


def _text() -> tuple[YBaseDoc, Callable[[int], None]]:
    text = YUnicode()
    text.set("print(1)\n")

    def edit(i: int) -> None:
        text.ydoc.get("source", type=Text).insert(0, str(i))

    return text, edit


@pytest.mark.parametrize(
    ("kind", "client_of"), [(NOTEBOOK, _notebook), (TEXT_FILE, _text)], ids=["notebook", "text"]
)
def test_client_updates_leave_no_undo_history_on_the_server(
    kind: DocumentKind, client_of: Callable[[], tuple[YBaseDoc, Callable[[int], None]]]
) -> None:
    """Each client update applied without an origin would otherwise stay on the stack
    for the life of the room (and recording is where yrs can panic)."""
    server = kind.new_document()
    client, edit = client_of()
    server.ydoc.apply_update(client.ydoc.get_update())
    for i in range(20):
        with client.ydoc.transaction():
            edit(i)
        server.ydoc.apply_update(client.ydoc.get_update(server.ydoc.get_state()))
    # The control: the same edits on a document as jupyter_ydoc makes it are recorded.
    assert len(client.undo_manager.undo_stack) == 21
    assert server.undo_manager.undo_stack == []
    assert not server.undo_manager.can_undo()
    assert server.source == client.source
