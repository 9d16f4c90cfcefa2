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

__all__ = ["check_notebook_shape", "load_notebook", "notebook_dict", "notebook_json"]

#: Cells are addressed by id, which nbformat introduced in 4.5.
MIN_NBFORMAT_MINOR = 5


def load_notebook(ynotebook: YNotebook, content: dict[str, Any]) -> None:
    """Load notebook JSON from disk into ``ynotebook``, upgraded to nbformat 4.5.

    The transaction carries the server origin, so that users cannot undo the load.
    """
    content = dict(content)
    if content.get("nbformat") == 4 and content.get("nbformat_minor", 0) < MIN_NBFORMAT_MINOR:
        content["nbformat_minor"] = MIN_NBFORMAT_MINOR
    with ynotebook.ydoc.transaction(origin=SERVER_ORIGIN):
        ynotebook.set(content)
        ynotebook.dirty = False


def notebook_dict(ynotebook: YNotebook) -> nbformat.NotebookNode:
    """The notebook as nbformat 4.5, taken from the current Y state."""
    return _normalized(ynotebook.get())


def _normalized(content: dict[str, Any]) -> nbformat.NotebookNode:
    nb: nbformat.NotebookNode = nbformat.from_dict(content)
    nb["nbformat"] = 4
    nb["nbformat_minor"] = max(int(nb.get("nbformat_minor", 0)), MIN_NBFORMAT_MINOR)
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return nb


def notebook_json(ynotebook: YNotebook) -> str:
    """The exact text that :func:`nbformat.write` puts on disk for this notebook."""
    text: str = nbformat.writes(notebook_dict(ynotebook), version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def _py(value: Any) -> Any:
    to_py = getattr(value, "to_py", None)
    return to_py() if to_py is not None else value


def check_notebook_shape(doc: Doc[Any], touched: Touched) -> None:
    """Check that the cells and metadata an update touched still export as nbformat 4.5.

    ``doc`` holds a notebook (the root types of a YNotebook); each touched cell goes
    through the conversion the export makes, then through nbformat's schema. Outputs
    are converted only if the update changed them.

    Raises:
        UpdateRefused: what is wrong, for the log and the client's close reason.
    """
    ycells: Array[Any] = doc.get("cells", type=Array)
    meta = _py(doc.get("meta", type=Map)) or {}
    cast_all(meta, float, int)  # numbers coming from Yjs are floats
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
    metadata = meta.get("metadata", {})
    content = {**meta, "cells": cells, "metadata": metadata}
    try:
        get_validator(version=4, version_minor=MIN_NBFORMAT_MINOR).validate(_normalized(content))
    except Exception as e:
        message = getattr(e, "message", None) or str(e)
        raise UpdateRefused(f"the notebook would not be valid nbformat: {message}"[:300]) from e
