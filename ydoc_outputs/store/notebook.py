"""Conversion between a YNotebook and the nbformat 4.5 notebook written to disk.

Autosave and export share :func:`notebook_json`, so an export is byte-for-byte
what the autosave writes through the contents manager.
"""

from __future__ import annotations

from typing import Any

import nbformat
from jupyter_ydoc import YNotebook
from jupyter_ydoc.utils import cast_all
from nbformat.validator import get_validator
from pycrdt import Array, Doc, Map

from ..ydoc.guard import Touched, UpdateRefused
from ..ydoc.writer import SERVER_ORIGIN

__all__ = [
    "InvalidNotebook",
    "check_notebook_shape",
    "load_notebook",
    "notebook_dict",
    "notebook_json",
]

#: Cells are addressed by id, which nbformat introduced in 4.5.
MIN_NBFORMAT_MINOR = 5


class InvalidNotebook(ValueError):
    """The document cannot be written as a notebook; the message says why."""


def nbformat_minor_range() -> range:
    """The minor versions of nbformat 4 written: from 4.5 (cell ids) to what nbformat knows."""
    return range(MIN_NBFORMAT_MINOR, max(MIN_NBFORMAT_MINOR, nbformat.v4.nbformat_minor) + 1)


def load_notebook(ynotebook: YNotebook, content: dict[str, Any]) -> None:
    """Load notebook JSON from disk into ``ynotebook``, as nbformat 4.5 or a later minor
    version that nbformat knows (an unknown one is written as the latest known).

    The transaction carries the server origin, so that users cannot undo the load.
    """
    content = dict(content)
    minors = nbformat_minor_range()
    if content.get("nbformat") == 4:
        minor = content.get("nbformat_minor", 0)
        minor = minor if isinstance(minor, int) and not isinstance(minor, bool) else 0
        content["nbformat_minor"] = min(max(minor, minors.start), minors.stop - 1)
    with ynotebook.ydoc.transaction(origin=SERVER_ORIGIN):
        ynotebook.set(content)
        ynotebook.dirty = False


def notebook_dict(ynotebook: YNotebook) -> nbformat.NotebookNode:
    """The notebook as written to disk, taken from the current Y state.

    Raises:
        InvalidNotebook: its ``nbformat`` or ``nbformat_minor`` is not one we write. The
            update guard refuses clients' updates that would do that, with this check.
    """
    meta = _meta(ynotebook.ydoc.get("meta", type=Map))
    # Only once the version is known good: jupyter_ydoc's ``get`` calls int() on it, and
    # drops cell ids below 4.5.
    content = ynotebook.get()
    return _notebook_node(meta, content["cells"])


def _meta(ymeta: Map[Any]) -> dict[str, Any]:
    """The ``meta`` map of a notebook as plain values, its version checked."""
    meta = _py(ymeta) or {}
    cast_all(meta, float, int)  # numbers coming from Yjs are floats
    major, minor = meta.get("nbformat"), meta.get("nbformat_minor")
    if major != 4 or type(major) is not int:
        raise InvalidNotebook(f"nbformat must be 4, not {major!r}")
    if type(minor) is not int or minor not in nbformat_minor_range():
        minors = nbformat_minor_range()
        raise InvalidNotebook(
            f"nbformat_minor must be from {minors.start} to {minors.stop - 1}, not {minor!r}"
        )
    return meta


def _notebook_node(meta: dict[str, Any], cells: list[dict[str, Any]]) -> nbformat.NotebookNode:
    """What is written for these cells under a checked ``meta``: nothing added but the
    fields that the code cells of a YNotebook may lack."""
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    content = {
        "cells": cells,
        "metadata": meta.get("metadata", {}),
        "nbformat": meta["nbformat"],
        "nbformat_minor": meta["nbformat_minor"],
    }
    node: nbformat.NotebookNode = nbformat.from_dict(content)
    return node


def notebook_json(ynotebook: YNotebook) -> str:
    """The exact text that :func:`nbformat.write` puts on disk for this notebook.

    Raises:
        InvalidNotebook: see :func:`notebook_dict`.
    """
    text: str = nbformat.writes(notebook_dict(ynotebook), version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def _py(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if to_py is not None else value


def check_notebook_shape(doc: Doc[Any], touched: Touched) -> None:
    """Check that the cells and metadata an update touched are written as valid nbformat.

    ``doc`` holds a notebook (the root types of a YNotebook). The version, the metadata
    and each touched cell go through the very conversion that :func:`notebook_dict`
    makes for the writer, then through nbformat's schema for that version. Outputs are
    converted only if the update changed them.

    Raises:
        UpdateRefused: what is wrong, for the log and the client's close reason.
    """
    ycells: Array[Any] = doc.get("cells", type=Array)
    try:
        meta = _meta(doc.get("meta", type=Map))
    except InvalidNotebook as e:
        raise UpdateRefused(f"the notebook would not be valid nbformat: {e}"[:300]) from e
    cells = []
    for index, with_outputs in sorted(touched.cells.items()):
        if index >= len(ycells):
            continue
        ycell = ycells[index]
        if not isinstance(ycell, Map):
            raise UpdateRefused(f"cell {index} is a {type(ycell).__name__}, not a map")
        cell = {k: _py(v) for k, v in ycell.items() if with_outputs or k != "outputs"}
        cell.pop("execution_state", None)
        cast_all(cell, float, int)
        if cell.get("cell_type") in ("raw", "markdown") and cell.get("attachments") == {}:
            del cell["attachments"]
        cells.append(cell)
    notebook = _notebook_node(meta, cells)
    try:
        get_validator(version=4, version_minor=meta["nbformat_minor"]).validate(notebook)
    except Exception as e:
        message = getattr(e, "message", None) or str(e)
        raise UpdateRefused(f"the notebook would not be valid nbformat: {message}"[:300]) from e
