"""Try each client update on a shadow copy of a room's document before the room applies it.

Two kinds of update must never reach a room's document, because neither can be undone
once applied (the update store keeps them, every client receives them):

- updates that make pycrdt panic: yrs can leave its block store half-integrated, after
  which the document cannot be encoded and the process may crash later;
- valid updates that break the notebook's shape (a cell that is a string, a source that
  is a number): export and every autosave would fail from then on.

The shadow is a second ``Doc`` that receives what the room's document gained since the
last client update (a diff against the shadow's state vector), then the client's update.
Only the cells that update touched are checked, so typing in a large notebook costs what
the keystroke costs, twice. A panic poisons only the shadow, which is rebuilt on the
next update.

An update that does not wholly integrate is refused too: one that depends on changes
the room does not have (yrs keeps such structs, and deletions of unknown items, pending
in the document, invisibly, and integrates them the moment the missing change arrives).
The shadow cannot see what is pending in the room's document once it is rebuilt, so a
pending change would reach the room unchecked, with whatever completes it. A client that
follows the sync protocol never sends one: it only builds on what the room sent it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Array, ArrayEvent, Doc, Map, MapEvent, TextEvent, get_update, write_var_uint

from ..rooms.protocol import FrameReader

__all__ = ["Touched", "UpdateGuard", "UpdateRefused"]

log = logging.getLogger(__name__)


class UpdateRefused(ValueError):
    """A client's update that the room must not apply; the message says why."""


@dataclass
class Touched:
    """What a notebook update changed, beyond the text inside its ``Text`` values.

    Attributes:
        cells: Indices (after the update) of cells inserted or changed, mapped to whether
            their outputs changed too (outputs are only checked then: they can be large).
        meta: Whether the notebook's ``meta`` map (nbformat, metadata) changed.
    """

    cells: dict[int, bool] = field(default_factory=dict)
    meta: bool = False
    #: Indices of cells whose ``execution_state`` alone changed (a page's ``[*]``
    #: mark): no shape to check, nbformat has no such field.
    states: set[int] = field(default_factory=set)

    def cell(self, index: int, outputs: bool) -> None:
        self.cells[index] = self.cells.get(index, False) or outputs

    def add_events(self, events: list[Any]) -> None:
        """Record a deep observer's events on the ``cells`` array."""
        for event in events:
            if isinstance(event, TextEvent):
                continue  # a Text stays a Text: typing can never break the shape
            # pycrdt's event classes do not declare their attributes to type checkers.
            changes: Any = event
            path = changes.path
            if not path:
                if isinstance(event, ArrayEvent):
                    self._add_inserted(changes.delta)
                continue
            index = path[0]
            if not isinstance(index, int):
                continue
            outputs = len(path) > 1 and path[1] == "outputs"
            if isinstance(event, MapEvent) and len(path) == 1:
                if changes.keys.keys() == {"execution_state"}:
                    self.states.add(index)
                    continue
                outputs = "outputs" in changes.keys
            self.cell(index, outputs)

    def _add_inserted(self, delta: list[dict[str, Any]]) -> None:
        index = 0
        for change in delta:
            if "retain" in change:
                index += int(change["retain"])
            elif "insert" in change:
                for _ in change["insert"]:
                    self.cell(index, True)
                    index += 1


#: Checks the shadow after an update against the room's document before it (the second
#: argument): raises :class:`UpdateRefused` if the update broke the shape.
ShapeCheck = Callable[[Doc[Any], Touched, Doc[Any]], None]


class UpdateGuard:
    """Admits a client update into ``doc`` only if it applies cleanly to a shadow copy.

    Args:
        doc: The room's document.
        check: Checks the shape of the shadow after an update that changed a notebook's
            structure, or None (text files: only panics are caught).
        whole: Checks the shadow after every update (documents with no notebook
            structure whose content is more than a ``Text``), or None.
    """

    def __init__(
        self, doc: Doc[Any], check: ShapeCheck | None = None, *, whole: ShapeCheck | None = None
    ) -> None:
        self._doc = doc
        self._check = check
        self._whole = whole
        self._shadow: Doc[Any] | None = None
        self._subscriptions: list[Any] = []
        self._touched = Touched()
        #: Whether the last admitted update changed the structure: cells inserted,
        #: deleted or changed beyond their text, or the notebook's metadata.
        self.changed_structure = False
        #: Whether the shadow's observers record changes (not while it catches up).
        self._recording = False

    def _new_shadow(self) -> Doc[Any]:
        shadow: Doc[Any] = Doc()
        if self._check is not None:
            cells: Array[Any] = shadow.get("cells", type=Array)
            meta: Map[Any] = shadow.get("meta", type=Map)
            # pycrdt unsubscribes when a subscription is garbage collected.
            self._subscriptions = [
                cells.observe_deep(self._cells_changed),
                meta.observe_deep(self._meta_changed),
            ]
        return shadow

    def _cells_changed(self, events: list[Any]) -> None:
        if self._recording:
            self._touched.add_events(events)

    def _meta_changed(self, events: list[Any]) -> None:
        if self._recording:
            self._touched.meta = True

    def admit(self, update: bytes) -> None:
        """Check ``update``; the caller applies it to the room's document if this returns.

        Raises:
            UpdateRefused: pycrdt rejects the update, panics on it, or it breaks the shape.
        """
        shadow = self._shadow
        if shadow is None:
            shadow = self._shadow = self._new_shadow()
        # What other clients and the kernel wrote since the last check; never panics,
        # as the room's document accepted all of it.
        shadow.apply_update(self._doc.get_update(shadow.get_state()))
        self._touched = touched = Touched()
        self._recording = True
        try:
            shadow.apply_update(update)
        except Exception as e:
            # pycrdt rejected it before changing anything (a decoding error).
            raise UpdateRefused(f"not a valid update: {e}") from e
        except BaseException as e:
            if type(e).__name__ != "PanicException":
                raise
            self._shadow = None  # possibly half-integrated: rebuilt on the next update
            log.warning("pycrdt panicked on a client's update: %s", e)
            raise UpdateRefused("pycrdt panicked on the update") from e
        finally:
            self._recording = False
        reason = _unintegrated(update, shadow)
        if reason is not None:
            self._shadow = None  # it holds the pending change, which the room will not
            raise UpdateRefused(reason)
        self.changed_structure = bool(touched.cells or touched.meta or touched.states)
        check = self._check if touched.cells or touched.meta else self._whole
        if check is None:
            return
        try:
            check(shadow, touched, self._doc)
        except UpdateRefused:
            # The shadow now holds the refused update, which the room will never have.
            self._shadow = None
            raise

    def reset(self) -> None:
        """Forget the shadow (it is rebuilt on the next update): frees its memory."""
        self._shadow = None


def _unintegrated(update: bytes, shadow: Doc[Any]) -> str | None:
    """Why ``update``, just applied to ``shadow``, is not wholly part of it, or None."""
    state = shadow.get_state()
    try:
        # What of the update the shadow has not seen: no structs if all integrated; the
        # update's delete set, whole.
        reader = FrameReader(get_update(update, state))
        if reader.var_uint() != 0:
            return "it depends on changes the room does not have"
        known: dict[bytes, bytes] | None = None  # read only for an update that deletes
        for _ in range(reader.var_uint()):
            client = reader.var_uint()
            for _ in range(reader.var_uint()):
                clock = reader.var_uint()
                end = clock + reader.var_uint()
                if known is None:
                    known = _state_entries(state)
                if end > _var_uint(known.get(write_var_uint(client), b"\0")):
                    return "it deletes changes the room does not have"
    except Exception as e:  # pycrdt, or a FrameError
        return f"not a valid update: {e}"
    return None


#: One lib0 varUint: bytes with the high bit set, then one without.
_VAR_UINT = re.compile(rb"[\x80-\xff]*[\x00-\x7f]", re.DOTALL)


def _state_entries(state: bytes) -> dict[bytes, bytes]:
    """A state vector as encoded client id -> encoded clock, split by the regex engine:
    a document that many clients edited has hundreds of entries, and decoding each
    varUint in Python cost a millisecond per deleting keystroke."""
    numbers = _VAR_UINT.findall(state)
    return dict(zip(numbers[1::2], numbers[2::2], strict=False))


def _var_uint(data: bytes) -> int:
    return FrameReader(data).var_uint()
