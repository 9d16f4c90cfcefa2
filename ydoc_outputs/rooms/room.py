"""One document's Y room: the shared document, its pycrdt-websocket room and autosave.

A notebook room also holds the reducer and the writer of its kernel output.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_ydoc import YNotebook
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Channel
from pycrdt.websocket import YRoom

from ..outputs.reducer import OutputLimits, OutputReducer
from ..store.autosave import Autosaver
from ..store.documents import RoomKey
from ..ydoc.writer import SERVER_ORIGIN, OutputWriter

__all__ = ["DocumentRoom", "NotebookRoom"]

log = logging.getLogger(__name__)

#: Saves a room's document and returns the file's new hash, if known.
SaveRoom = Callable[["DocumentRoom"], Awaitable[str | None]]


class DocumentRoom:
    """A live document shared by every client of it.

    Attributes:
        key: The room's name, parsed: the document kind and the file id, which
            jupyter-server-fileid keeps across renames.
        doc: The shared document.
    """

    def __init__(self, key: RoomKey, save: SaveRoom, *, autosave_delay: float) -> None:
        self.key = key
        self.doc: YBaseDoc = key.kind.new_document()
        self.yroom = YRoom(ready=True, ydoc=self.doc.ydoc, log=log)
        self.yroom.on_message_error = self._on_message_error
        self.autosaver = Autosaver(
            self.doc, lambda: key.kind.snapshot(self.doc), lambda: save(self), autosave_delay
        )
        self._task: asyncio.Task[None] | None = None
        #: Executions of this document's cells that are queued or running.
        self.busy = 0

    @property
    def name(self) -> str:
        """The room name, ``{format}:{type}:{file_id}``; a notebook's document id."""
        return self.key.name

    @property
    def clients(self) -> set[Channel]:
        return self.yroom.clients

    async def start(self, content: Any, path: str) -> None:
        """Load ``content`` (the file at ``path``, from the contents manager); start serving."""
        self.key.kind.load(self.doc, content)
        with self.doc.ydoc.transaction(origin=SERVER_ORIGIN):
            self.doc.path = path
        self._task = asyncio.create_task(self.yroom.start())
        await self.yroom.started.wait()
        await self.yroom.ydoc_observed.wait()
        # What is on disk now, so that merely opening a file never rewrites it.
        self.autosaver.start(self.key.kind.snapshot(self.doc))

    async def serve(self, channel: Channel) -> None:
        """Serve one websocket client until it disconnects."""
        await self.yroom.serve(channel)

    async def stop(self) -> None:
        """Save what is unsaved, then stop the room."""
        await self.autosaver.stop()
        if self._task is not None:
            await self.yroom.stop()
            self._task.cancel()
            self._task = None

    async def _on_message_error(self, exc: Exception, message: bytes, channel: Channel) -> bool:
        log.warning("closing client of %s after a bad message: %r", self.name, exc)
        close = getattr(channel, "close", None)
        if close is not None:
            close(4400, "malformed message")
        return True


class NotebookRoom(DocumentRoom):
    """A notebook room, into which the server writes kernel output.

    Attributes:
        reducer: Turns this notebook's kernel messages into output operations.
        writer: Applies those operations to ``ynotebook``.
    """

    def __init__(
        self, key: RoomKey, save: SaveRoom, *, autosave_delay: float, limits: OutputLimits
    ) -> None:
        super().__init__(key, save, autosave_delay=autosave_delay)
        self.reducer = OutputReducer(limits)
        self.writer = OutputWriter(self.ynotebook)

    @property
    def ynotebook(self) -> YNotebook:
        assert isinstance(self.doc, YNotebook)
        return self.doc
