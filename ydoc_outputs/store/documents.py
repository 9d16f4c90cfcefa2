"""The kinds of shared documents a room can hold, and how each goes to and from disk.

The stock collaboration frontend opens every document through a room: notebooks
(``json:notebook``) and text files (``text:file``). Only notebooks run cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_ydoc import YNotebook, YUnicode
from jupyter_ydoc.ybasedoc import YBaseDoc
from tornado.web import HTTPError

from ..ydoc.guard import UpdateGuard
from ..ydoc.writer import SERVER_ORIGIN
from .notebook import check_notebook_shape, load_notebook, notebook_dict, notebook_json

__all__ = [
    "KINDS",
    "NOTEBOOK",
    "TEXT_FILE",
    "DocumentKind",
    "RoomKey",
    "parse_room_name",
    "read_file",
    "sha256_of",
    "stamp_of",
    "without_undo_history",
]


#: The only origin the undo managers of the server's documents record: none uses it.
_NEVER_UNDONE = object()


def without_undo_history(doc: YBaseDoc) -> None:
    """Keep ``doc``'s undo manager from recording anything.

    jupyter_ydoc gives every document an undo manager, which records each transaction
    without an origin, the clients' updates among them. Nothing undoes on the server, so
    the record would only grow for as long as a room lives; and recording is where yrs
    0.28 can panic (``attempt to divide by zero`` in ``ClientBlockList::find_index``),
    which would close the client whose valid update was being applied. A manager that
    tracks an origin records only that origin's transactions.
    """
    doc.undo_manager.include_origin(_NEVER_UNDONE)


@dataclass(frozen=True)
class DocumentKind:
    """A ``format:type`` pair of the wire contract and its contents-manager model."""

    format: str
    type: str

    def new_document(self) -> YBaseDoc:
        doc: YBaseDoc = YNotebook() if self is NOTEBOOK else YUnicode()
        without_undo_history(doc)
        return doc

    def guard(self, doc: YBaseDoc) -> UpdateGuard:
        """What checks client updates to ``doc``: a notebook's shape, a text file's only
        that pycrdt can apply them."""
        check = check_notebook_shape if self is NOTEBOOK else None
        return UpdateGuard(doc.ydoc, check)

    def load(self, doc: YBaseDoc, content: Any) -> None:
        """Put the contents manager's ``content`` into ``doc``; users cannot undo it."""
        if isinstance(doc, YNotebook):
            load_notebook(doc, content)
            return
        with doc.ydoc.transaction(origin=SERVER_ORIGIN):
            doc.set(content)
            doc.dirty = False

    def snapshot(self, doc: YBaseDoc) -> str:
        """Exactly what saving ``doc`` writes, to tell whether a save is needed."""
        if isinstance(doc, YNotebook):
            return notebook_json(doc)
        text: str = doc.get()
        return text

    def model(self, doc: YBaseDoc) -> dict[str, Any]:
        """The contents-manager model that saves ``doc``."""
        content = notebook_dict(doc) if isinstance(doc, YNotebook) else doc.get()
        return {"type": self.type, "format": self.format, "content": content}


NOTEBOOK = DocumentKind("json", "notebook")
TEXT_FILE = DocumentKind("text", "file")
KINDS = {(kind.format, kind.type): kind for kind in (NOTEBOOK, TEXT_FILE)}


@dataclass(frozen=True)
class RoomKey:
    """A parsed room name, ``{format}:{type}:{file_id}``."""

    kind: DocumentKind
    file_id: str

    @property
    def name(self) -> str:
        return f"{self.kind.format}:{self.kind.type}:{self.file_id}"


def parse_room_name(name: str) -> RoomKey | None:
    """Parse a room name; None if it is malformed or names a kind we do not serve."""
    parts = name.split(":", 2)
    if len(parts) != 3 or not parts[2]:
        return None
    kind = KINDS.get((parts[0], parts[1]))
    return RoomKey(kind, parts[2]) if kind is not None else None


def sha256_of(model: dict[str, Any]) -> str | None:
    """The SHA-256 hex digest of a contents model's file, if the model carries it."""
    digest = model.get("hash")
    if model.get("hash_algorithm") == "sha256" and isinstance(digest, str):
        return digest
    return None


def stamp_of(model: dict[str, Any]) -> tuple[Any, Any] | None:
    """A contents model's modification time and size: what tells, without reading the
    file, whether it may have changed (None if the model lacks the time)."""
    modified = model.get("last_modified")
    return None if modified is None else (modified, model.get("size"))


async def read_file(contents: Any, path: str, **options: Any) -> dict[str, Any]:
    """The contents manager's model of ``path`` (``get(path, **options)``).

    Raises:
        HTTPError: as the contents manager raises it; or 400 where it fails on the file
            itself instead: jupyter_server's trust check takes every cell to have a
            ``cell_type``, and a text editor may have saved one without (a 500 in the
            contents API). Such a file is unreadable as a notebook, a client's doing and
            not a server fault.
    """
    try:
        model: dict[str, Any] = await ensure_async(contents.get(path, **options))
    except HTTPError:
        raise
    except Exception as e:
        raise HTTPError(400, f"{path} cannot be read as a {options.get('type')}: {e!r}") from e
    return model
