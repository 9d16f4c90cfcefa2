"""Rooms with no file behind them: awareness rooms and forks.

jupyter-server-ydoc serves any room whose name is not ``{format}:{type}:{fileId}`` as
a transient room: ``JupyterLab:globalAwareness`` (who is online, read by the
collaboration UI's collaborators panel) and the rooms of forks, which
``api/collaboration/fork`` creates. Nothing in them is stored or saved.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Doc

from ..ydoc.guard import UpdateGuard
from .protocol import CLOSE_BAD_REQUEST, SYNC_MESSAGE, FrameReader
from .sync import AWARENESS_INTERVAL, EMPTY_UPDATE, Client, SyncRoom

__all__ = ["GLOBAL_AWARENESS", "TransientRoom", "is_document_room_name"]

#: The room of jupyter-collaboration-ui's collaborators panel and user menu.
GLOBAL_AWARENESS = "JupyterLab:globalAwareness"

log = logging.getLogger(__name__)

SYNC_STEP1 = 0


def is_document_room_name(name: str) -> bool:
    """Whether ``name`` names a file's room (``{format}:{type}:{fileId}``), as
    jupyter-server-ydoc tells them apart: by at least two colons."""
    return name.count(":") >= 2


class TransientRoom:
    """A shared document and awareness with no file: nothing saved, nothing stored.

    Attributes:
        name: The room name.
        document: The document's jupyter_ydoc view, for a fork (the root's kind), or None.
        fork_of: The root room's name, for a fork.
    """

    def __init__(
        self,
        name: str,
        ydoc: Doc[Any] | None = None,
        *,
        document: YBaseDoc | None = None,
        fork_of: str | None = None,
        awareness_interval: float = AWARENESS_INTERVAL,
    ) -> None:
        self.name = name
        self.ydoc: Doc[Any] = ydoc if ydoc is not None else Doc()
        self.document = document
        self.fork_of = fork_of
        self.guard = UpdateGuard(self.ydoc)
        self.sync = SyncRoom(self.ydoc, self._on_bad_message, None, awareness_interval)
        self.sync.start()
        #: Kept open without clients (a fork lives until it is deleted).
        self.pinned = fork_of is not None
        #: What stops mirroring the root into a synchronized fork.
        self.unsubscribe: Any = None
        #: Its awareness as a pycrdt ``Awareness`` (see SyncRoom.awareness).
        self.awareness = self.sync.awareness
        if document is not None:
            document.awareness = self.awareness

    @property
    def room_id(self) -> str:
        return self.name

    @property
    def clients(self) -> set[Client]:
        return self.sync.clients

    @property
    def _document(self) -> YBaseDoc | None:
        """jupyter-server-ydoc's name of the document view, used by extensions."""
        return self.document

    async def serve(self, client: Client) -> None:
        await self.sync.serve(client)

    def admit(self, message: bytes) -> None:
        """Refuse a client update that pycrdt cannot apply (see :class:`UpdateGuard`)."""
        if len(message) < 2 or message[0] != SYNC_MESSAGE or message[1] == SYNC_STEP1:
            return
        start, end = FrameReader(message, 2).var_bytes()
        update = message[start:end]
        if update != EMPTY_UPDATE:
            self.guard.admit(update)

    def close_clients(self, code: int, reason: str) -> None:
        for client in list(self.clients):
            client.close(code, reason)

    async def stop(self) -> None:
        if self.unsubscribe is not None:
            self.unsubscribe()
            self.unsubscribe = None
        self.guard.reset()
        self.sync.stop()

    def _on_bad_message(self, exc: Exception, client: Client) -> None:
        log.warning("closing a client of %s after a bad message: %r", self.name, exc)
        client.close(CLOSE_BAD_REQUEST, "malformed message")
