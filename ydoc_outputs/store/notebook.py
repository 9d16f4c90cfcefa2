"""Conversion between a YNotebook and the nbformat 4.5 notebook written to disk.

Autosave and export share :func:`notebook_dict`, so an export is byte-for-byte
what the autosave writes through the contents manager; an export also checks it
against nbformat's schema (a file may be loaded invalid, and is saved as it came).
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
    "exported_json",
    "load_notebook",
    "loading_problem",
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

    Raises:
        InvalidNotebook: jupyter_ydoc cannot load ``content`` (see
            :func:`loading_problem`); ``ynotebook`` is left as it was.
    """
    problem = loading_problem(content)
    if problem is not None:
        raise InvalidNotebook(problem)
    content = dict(content)
    minors = nbformat_minor_range()
    if content.get("nbformat") == 4:
        minor = content.get("nbformat_minor", 0)
        minor = minor if isinstance(minor, int) and not isinstance(minor, bool) else 0
        content["nbformat_minor"] = min(max(minor, minors.start), minors.stop - 1)
    with ynotebook.ydoc.transaction(origin=SERVER_ORIGIN):
        ynotebook.set(content)
        ynotebook.dirty = False


def loading_problem(content: Any) -> str | None:
    """Why jupyter_ydoc's ``YNotebook.set`` cannot load ``content``, or None if it can.

    A file that another program wrote (or a text view of it saved) can be a notebook in
    the contents manager's eyes, which reads any JSON, and still lack what
    ``YNotebook.set`` needs: a cell without ``source`` made it raise half way through,
    leaving the document half replaced. So every load is checked first, whole, and a
    file that fails is not loaded at all (nor saved over).
    """
    if not isinstance(content, dict):
        return f"the notebook is a {type(content).__name__}, not an object"
    if not isinstance(content.get("metadata", {}), dict):
        return "the notebook's metadata is not an object"
    cells = content.get("cells")
    if not isinstance(cells, list):
        return "the notebook has no list of cells"
    for index, cell in enumerate(cells):
        problem = _cell_problem(cell)
        if problem is not None:
            return f"cell {index} {problem}"
    return None


def _cell_problem(cell: Any) -> str | None:
    if not isinstance(cell, dict):
        return f"is a {type(cell).__name__}, not an object"
    if "cell_type" not in cell:
        return "has no cell_type"
    if not _is_text(cell.get("source")):
        return "has no source (a string or a list of strings)"
    if not isinstance(cell.get("metadata", {}), dict):
        return "has metadata that is not an object"
    if not isinstance(cell.get("id", ""), str):
        return "has an id that is not a string"
    if cell["cell_type"] != "code":
        return None
    outputs = cell.get("outputs", [])
    if not isinstance(outputs, list):
        return "has outputs that are not a list"
    for output in outputs:
        if not isinstance(output, dict):
            return "has an output that is not an object"
        if output.get("output_type") == "stream" and not _is_text(output.get("text", "")):
            return "has a stream output whose text is not a string or a list of strings"
    return None


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(line, str) for line in value)
    )


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


def exported_json(ynotebook: YNotebook) -> str:
    """:func:`notebook_json`, for a notebook that nbformat's schema accepts.

    Raises:
        InvalidNotebook: it does not; e.g. a text view of the file saved a notebook with
            a typo in a key, which the notebook room loaded as it is (as jupyter_server
            does) and would save as it is.
    """
    notebook = notebook_dict(ynotebook)
    try:
        get_validator(version=4, version_minor=notebook["nbformat_minor"]).validate(notebook)
    except Exception as e:
        message = getattr(e, "message", None) or str(e)
        raise InvalidNotebook(f"not valid nbformat: {message}"[:500]) from e
    return _written(notebook)


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
    return _written(notebook_dict(ynotebook))


def _written(notebook: nbformat.NotebookNode) -> str:
    text: str = nbformat.writes(notebook, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def _py(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if to_py is not None else value


def check_notebook_shape(doc: Doc[Any], touched: Touched, before: Doc[Any]) -> None:
    """Check that what an update touched is written as valid nbformat.

    ``doc`` holds a notebook (the root types of a YNotebook) after the update, ``before``
    the room's notebook before it. The version, and the metadata if it changed, and each
    touched cell go through the very conversion that :func:`notebook_dict` makes for the
    writer, then through nbformat's schema for that version. Outputs are converted only
    if the update changed them. Metadata that was already invalid (as loaded from a
    file that older tools wrote) is not held against an update that leaves it so, as
    long as it stays a map: the writer writes it as it came, as jupyter_server does.

    Raises:
        UpdateRefused: what is wrong, for the log and the client's close reason.
    """
    ycells: Array[Any] = doc.get("cells", type=Array)
    try:
        meta = _meta(doc.get("meta", type=Map))
    except InvalidNotebook as e:
        raise UpdateRefused(f"the notebook would not be valid nbformat: {e}"[:300]) from e
    validator = get_validator(version=4, version_minor=meta["nbformat_minor"])
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
    _validate(validator, _notebook_node({**meta, "metadata": {}}, cells))
    if touched.meta:
        if not isinstance(meta.get("metadata", {}), dict):
            reason = "the notebook would not be valid nbformat: its metadata must be a map"
            raise UpdateRefused(reason)
        try:
            _validate(validator, _notebook_node(meta, []))
        except UpdateRefused:
            if _metadata_was_valid(validator, before):
                raise


def _metadata_was_valid(validator: Any, doc: Doc[Any]) -> bool:
    try:
        _validate(validator, _notebook_node(_meta(doc.get("meta", type=Map)), []))
    except (InvalidNotebook, UpdateRefused):
        return False
    return True


def _validate(validator: Any, notebook: nbformat.NotebookNode) -> None:
    try:
        validator.validate(notebook)
    except Exception as e:
        message = getattr(e, "message", None) or str(e)
        raise UpdateRefused(f"the notebook would not be valid nbformat: {message}"[:300]) from e
