"""Forks of rooms and timelines of documents, as jupyter-server-ydoc 3.0 offers them.

A fork is a transient room holding a copy of a room's document, optionally kept in sync
with it (``synchronize``); deleting it with ``merge`` applies its document to the root,
as one more client update, checked by the root's guard first. A timeline is a fork
rebuilt from the room's stored history, which ``undo_redo`` steps back and forth.

Kernel output in a merge: a fork holds the root's output items as they were when it
was made (and, synchronized, every later one); merging sends back only what the root
lacks, so the items the kernel wrote are neither duplicated nor brought back once the
server deleted them (a ``\\r`` rewrite, a cleared cell).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Doc, UndoManager

from ..store.documents import DocumentKind
from .manager import RoomManager
from .room import DocumentRoom
from .transient import TransientRoom

__all__ = ["ForkInfo", "Forks", "MergeRefused", "Timeline"]


#: Timelines kept at once: each holds a copy of a document and its history, and a page
#: that asked for one may never come to it or restore it; past this the oldest ends.
MAX_TIMELINES = 16


class MergeRefused(ValueError):
    """A fork's document cannot be merged into its root (the root's guard refused it)."""


@dataclass(frozen=True)
class ForkInfo:
    """What ``GET api/collaboration/fork/{root}`` lists about one fork."""

    root_roomid: str
    synchronize: bool
    title: str
    description: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Timeline:
    """A document rebuilt from a room's stored history, one undo step per change."""

    room_id: str
    document: YBaseDoc
    timestamps: list[float]

    @property
    def undo_manager(self) -> UndoManager:
        manager: UndoManager = self.document.undo_manager
        return manager

    def step(self, action: str, steps: int) -> bool:
        """Undo or redo up to ``steps`` changes; whether any could be made."""
        manager = self.undo_manager
        if action == "undo" and not manager.can_undo():
            return False
        if action == "redo" and not manager.can_redo():
            return False
        for _ in range(steps):
            # The first change is the document's creation: it is never undone.
            if action == "undo" and len(manager.undo_stack) > 1:
                manager.undo()
            elif action == "redo" and manager.can_redo():
                manager.redo()
            else:
                break
        return True


class Forks:
    """The forks and timelines of one server process."""

    def __init__(self, manager: RoomManager) -> None:
        self._manager = manager
        self.infos: dict[str, ForkInfo] = {}
        self.timelines: dict[str, Timeline] = {}
        self._roots: dict[str, DocumentRoom] = {}

    def of(self, root: str) -> dict[str, dict[str, Any]]:
        """The forks of the room ``root``, by fork room name."""
        infos = self.infos.items()
        return {name: info.as_dict() for name, info in infos if info.root_roomid == root}

    async def create(
        self, root: DocumentRoom | TransientRoom, synchronize: bool, title: str, description: str
    ) -> tuple[str, ForkInfo]:
        """Fork ``root``: a new transient room holding a copy of its document."""
        name = uuid.uuid4().hex
        ydoc: Doc[Any] = Doc()
        if isinstance(root, DocumentRoom):
            source, kind = root.doc.ydoc, root.key.kind
            document: YBaseDoc | None = kind.new_document(ydoc)
        else:
            source = root.ydoc
            document = type(root.document)(ydoc) if root.document is not None else None
        ydoc.apply_update(source.get_update())
        fork = TransientRoom(
            name,
            ydoc,
            document=document,
            fork_of=root.name,
            awareness_interval=self._manager.awareness_interval,
        )
        if synchronize:
            subscription = source.observe(lambda event: ydoc.apply_update(event.update))
            fork.unsubscribe = _unobserver(source, subscription)
        if isinstance(root, DocumentRoom):
            # The root stays open while it has forks: a merge needs it, and a
            # synchronized fork follows it.
            self._manager.hold(root)
            self._roots[name] = root
        info = self.infos[name] = ForkInfo(root.name, synchronize, title, description)
        self._manager.add_transient(fork)
        return name, info

    async def delete(self, name: str, merge: bool) -> ForkInfo | None:
        """Delete the fork ``name``, first merging it into its root if ``merge``; its
        info, or None if there is no such fork.

        Raises:
            MergeRefused: the root's guard refused the fork's document (the fork is kept).
        """
        info = self.infos.get(name)
        fork = self._manager.transient.get(name)
        if info is None or fork is None:
            return None
        if merge:
            root = self._roots.get(name) or self._manager.transient.get(info.root_roomid)
            if root is not None:
                self._merge(fork, root)
        del self.infos[name]
        await self._manager.remove_transient(name)
        held = self._roots.pop(name, None)
        if held is not None:
            self._manager.release(held)
        return info

    @staticmethod
    def _merge(fork: TransientRoom, root: DocumentRoom | TransientRoom) -> None:
        target = root.doc.ydoc if isinstance(root, DocumentRoom) else root.ydoc
        update = fork.ydoc.get_update(target.get_state())
        try:
            root.guard.admit(update)
        except ValueError as e:
            raise MergeRefused(str(e)) from e
        target.apply_update(update)

    async def timeline(self, room: DocumentRoom) -> tuple[str, Timeline]:
        """A timeline of ``room``'s stored history, served as a transient room."""
        history = await self._manager.stored_history(room.name)
        name = uuid.uuid4().hex
        ydoc: Doc[Any] = Doc()
        document = _recording_document(room.key.kind, ydoc)
        manager = document.undo_manager  # its undo_stack is a new list at each read
        timestamps: list[float] = []
        for update, timestamp in history:
            before = len(manager.undo_stack)
            ydoc.apply_update(update)
            if len(manager.undo_stack) > before:
                timestamps.append(timestamp)
        while len(self.timelines) >= MAX_TIMELINES:
            await self.end_timeline(next(iter(self.timelines)), close=True)
        timeline = self.timelines[name] = Timeline(room.name, document, timestamps)
        self._manager.add_transient(
            TransientRoom(
                name,
                ydoc,
                document=document,
                fork_of=room.name,
                awareness_interval=self._manager.awareness_interval,
            )
        )
        return name, timeline

    async def end_timeline(self, name: str, close: bool = False) -> bool:
        """Forget the timeline ``name`` (restored, or ``close``: abandoned, its room
        closed); whether it existed."""
        if self.timelines.pop(name, None) is None:
            return False
        if close:
            await self._manager.remove_transient(name)
            return True
        # Its page moves back to the file's room on its own: closing it under the page
        # would make y-websocket reconnect to an empty room of that name first. It goes
        # when its last client has left.
        room = self._manager.transient.get(name)
        if room is not None:
            room.pinned = False
            self._manager.maybe_clean_up(room)
        return True


def _recording_document(kind: DocumentKind, ydoc: Doc[Any]) -> YBaseDoc:
    """A view of ``ydoc`` whose undo manager records every change (a timeline's)."""
    return kind.document_class(ydoc)


def _unobserver(source: Doc[Any], subscription: Any) -> Callable[[], None]:
    def unobserve() -> None:
        source.unobserve(subscription)

    return unobserve
