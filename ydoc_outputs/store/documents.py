"""The kinds of shared documents a room can hold, and how each goes to and from disk.

A kind is a ``format:type`` pair of the wire contract. Its document class is the one that
jupyter_ydoc registers for the type through its ``jupyter_ydoc`` entry point group:
notebooks (``json:notebook``), text files (``text:file``, ``text:unicode``), blobs
(``base64:blob``) and third-party types such as ``text:chat`` (jupyterlab-chat), installed
now or later. Only notebooks run cells.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_ydoc import YBlob, YNotebook, YUnicode
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Doc
from tornado.web import HTTPError

from ..ydoc.guard import Touched, UpdateGuard, UpdateRefused
from ..ydoc.writer import SERVER_ORIGIN
from .notebook import (
    check_notebook_shape,
    load_notebook,
    loading_problem,
    notebook_dict,
    notebook_json,
)

__all__ = [
    "NOTEBOOK",
    "TEXT_FILE",
    "DocumentKind",
    "RoomKey",
    "document_classes",
    "kind_of",
    "parse_room_name",
    "read_file",
    "sha256_of",
    "stamp_of",
    "without_undo_history",
]


log = logging.getLogger(__name__)

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


#: Formats the contents manager reads and writes a file in (``json`` only for notebooks).
FILE_FORMATS = ("text", "base64")

#: The document classes jupyter_ydoc registers, by type; reread when a type is missing
#: (a package installed since), at most once per ``_RESCAN_SECONDS``.
_classes: dict[str, type[YBaseDoc]] = {}
_scanned_at = float("-inf")
_RESCAN_SECONDS = 1.0


def document_classes(rescan: bool = False) -> dict[str, type[YBaseDoc]]:
    """The document classes of the ``jupyter_ydoc`` entry point group, by type name.

    An entry point that fails to load is left out (and tried again on the next scan).
    """
    global _scanned_at
    now = time.monotonic()
    if (rescan and now - _scanned_at >= _RESCAN_SECONDS) or not _classes:
        _scanned_at = now
        for ep in entry_points(group="jupyter_ydoc"):
            if ep.name in _classes:
                continue
            try:
                loaded = ep.load()
            except Exception as e:
                log.warning("the jupyter_ydoc entry point %s cannot be loaded: %r", ep.name, e)
                continue
            if isinstance(loaded, type) and issubclass(loaded, YBaseDoc):
                _classes[ep.name] = loaded
    return _classes


@dataclass(frozen=True)
class DocumentKind:
    """A ``format:type`` pair of the wire contract, its document class and its
    contents-manager model."""

    format: str
    type: str
    document_class: builtins.type[YBaseDoc] = field(compare=False, repr=False)

    @property
    def is_notebook(self) -> bool:
        return self.type == "notebook"

    @property
    def contents_type(self) -> str:
        """The type the contents manager knows the file as: it knows only notebooks
        and files (jupyter_server treats every other type it is asked for as a file)."""
        return "notebook" if self.is_notebook else "file"

    def new_document(self, ydoc: Doc[Any] | None = None) -> YBaseDoc:
        doc = self.document_class(ydoc)
        without_undo_history(doc)
        return doc

    def guard(self, doc: YBaseDoc) -> UpdateGuard:
        """What checks client updates to ``doc``: a notebook's shape; for kinds whose
        content is not simply a ``Text``, that the content can still be saved; for text
        files only that pycrdt can apply them."""
        if self.is_notebook:
            return UpdateGuard(doc.ydoc, check_notebook_shape)
        if isinstance(doc, YUnicode):
            return UpdateGuard(doc.ydoc)
        return UpdateGuard(doc.ydoc, whole=_SavableCheck(self))

    def load(self, doc: YBaseDoc, content: Any) -> None:
        """Put the contents manager's ``content`` into ``doc``; users cannot undo it."""
        if isinstance(doc, YNotebook):
            load_notebook(doc, content)
            return
        blob = issubclass(self.document_class, YBlob)
        if self.format == "base64" and isinstance(content, str) and blob:
            content = base64.b64decode(content)
        with doc.ydoc.transaction(origin=SERVER_ORIGIN):
            doc.set(content)
            doc.dirty = False

    def snapshot(self, doc: YBaseDoc) -> str:
        """Exactly what saving ``doc`` writes, to tell whether a save is needed."""
        if isinstance(doc, YNotebook):
            return notebook_json(doc)
        text: str = self.content(doc)
        return text

    def content(self, doc: YBaseDoc) -> Any:
        """The content of the contents-manager model of ``doc``.

        Raises:
            UpdateRefused: the document holds something the file's format cannot hold.
        """
        if isinstance(doc, YNotebook):
            return notebook_dict(doc)
        value = doc.get()
        if self.format == "base64" and isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode("ascii")
        if not isinstance(value, str):
            raise UpdateRefused(
                f"a {self.format}:{self.type} document must be saved as a string, "
                f"not {type(value).__name__}"
            )
        if self.format == "base64":
            try:
                base64.b64decode(value, validate=True)
            except ValueError as e:
                raise UpdateRefused(f"not base64: {e}") from e
        return value

    def refusal(self, content: Any) -> str | None:
        """Why a room of this kind must not load ``content`` (from the contents manager),
        or None if it may.

        A notebook that jupyter_ydoc cannot load is refused whole (it would be left half
        loaded). Otherwise a room must not open a file that its kind would save back
        with less in it: a notebook opened as a chat would be saved as an empty chat at
        the first edit. Texts and blobs round-trip by construction; other kinds must
        give back the same text, or JSON holding every value the file held (a kind may
        add defaults, such as a chat's empty ``attachments``). An empty file is kept
        whatever it becomes (a new file).
        """
        if self.is_notebook:
            return loading_problem(content)
        if issubclass(self.document_class, YUnicode | YBlob) or not content:
            return None
        lost = f"saving it as {self.format}:{self.type} would lose what the file holds"
        try:
            doc = self.new_document()
            self.load(doc, content)
            saved = self.content(doc)
        except Exception:
            return lost
        if saved == content:
            return None
        try:
            return None if _preserves(json.loads(content), json.loads(saved)) else lost
        except (ValueError, RecursionError):
            return lost

    def model(self, doc: YBaseDoc) -> dict[str, Any]:
        """The contents-manager model that saves ``doc``."""
        return {"type": self.contents_type, "format": self.format, "content": self.content(doc)}


def _preserves(original: Any, saved: Any) -> bool:
    """Whether the JSON value ``saved`` holds everything ``original`` held: the same
    scalars, lists of the same length holding their items, objects holding every key."""
    if isinstance(original, dict):
        return isinstance(saved, dict) and all(
            key in saved and _preserves(value, saved[key]) for key, value in original.items()
        )
    if isinstance(original, list):
        return (
            isinstance(saved, list)
            and len(saved) == len(original)
            and all(_preserves(a, b) for a, b in zip(original, saved, strict=True))
        )
    if isinstance(original, bool) or isinstance(saved, bool):
        return original is saved  # true is not 1
    return bool(original == saved)  # 1 is 1.0: a kind may store numbers as floats


class _SavableCheck:
    """Whether a shadow document can still be saved: its class's ``get()`` works and
    gives what the file's format holds. Costs a whole read of the document per update,
    which is fine for the small documents of such kinds (chats, blobs)."""

    def __init__(self, kind: DocumentKind) -> None:
        self._kind = kind
        self._shadow: Doc[Any] | None = None
        self._view: YBaseDoc | None = None

    def __call__(self, shadow: Doc[Any], _touched: Touched, _doc: Doc[Any]) -> None:
        if self._shadow is not shadow:
            self._shadow, self._view = shadow, self._kind.document_class(shadow)
        assert self._view is not None
        try:
            self._kind.content(self._view)
        except UpdateRefused:
            raise
        except Exception as e:
            raise UpdateRefused(f"the document could not be saved after it: {e!r}") from e


_kinds: dict[tuple[str, str], DocumentKind] = {}


def kind_of(file_format: str, file_type: str) -> DocumentKind | None:
    """The kind ``{file_format}:{file_type}``, or None if it is not served: a type no
    installed package registers, or a format its file cannot be read in."""
    kind = _kinds.get((file_format, file_type))
    if kind is not None:
        return kind
    if file_type == "notebook":
        if file_format != "json":
            return None
    elif file_format not in FILE_FORMATS:
        return None
    cls = document_classes().get(file_type) or document_classes(rescan=True).get(file_type)
    if cls is None:
        return None
    kind = _kinds[(file_format, file_type)] = DocumentKind(file_format, file_type, cls)
    return kind


NOTEBOOK = DocumentKind("json", "notebook", YNotebook)
TEXT_FILE = DocumentKind("text", "file", document_classes().get("file", YUnicode))
_kinds.update({("json", "notebook"): NOTEBOOK, ("text", "file"): TEXT_FILE})


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
    kind = kind_of(parts[0], parts[1])
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
