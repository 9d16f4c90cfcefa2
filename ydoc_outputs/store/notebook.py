"""Conversion between a YNotebook and the nbformat 4.5 notebook written to disk.

Autosave and export share :func:`notebook_json`, so an export is byte-for-byte
what the autosave writes through the contents manager.
"""

from __future__ import annotations

from typing import Any

import nbformat
from jupyter_ydoc import YNotebook

from ..ydoc.writer import SERVER_ORIGIN

__all__ = ["load_notebook", "notebook_dict", "notebook_json"]

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
    nb: nbformat.NotebookNode = nbformat.from_dict(ynotebook.get())
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
