"""One notebook's Y room: the YNotebook, its pycrdt-websocket room, writer and autosave."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Channel
from pycrdt.websocket import YRoom

from ..outputs.reducer import OutputLimits, OutputReducer
from ..store.autosave import Autosaver
from ..store.notebook import load_notebook
from ..ydoc.writer import OutputWriter

__all__ = ["NotebookRoom"]

log = logging.getLogger(__name__)


class NotebookRoom:
    """A live notebook document shared by every client and by the kernel output writer.

    Attributes:
        name: The room name, ``json:notebook:{file_id}``; also the document id.
        file_id: The file id from jupyter-server-fileid, which survives renames.
        ynotebook: The shared document.
        reducer: Turns this notebook's kernel messages into output operations.
        writer: Applies those operations to ``ynotebook``.
    """

    def __init__(
        self,
        name: str,
        file_id: str,
        save: Callable[[YNotebook], Awaitable[str | None]],
        *,
        autosave_delay: float,
        limits: OutputLimits,
    ) -> None:
        self.name = name
        self.file_id = file_id
        self.ynotebook = YNotebook()
        self.reducer = OutputReducer(limits)
        self.writer = OutputWriter(self.ynotebook)
        self.yroom = YRoom(ready=True, ydoc=self.ynotebook.ydoc, log=log)
        self.yroom.on_message_error = self._on_message_error
        self.autosaver = Autosaver(self.ynotebook, save, autosave_delay)
        self._task: asyncio.Task[None] | None = None
        #: Executions of this notebook's cells that are queued or running.
        self.busy = 0

    @property
    def clients(self) -> set[Channel]:
        return self.yroom.clients

    async def start(self, content: dict[str, Any]) -> None:
        """Load ``content`` (the notebook on disk) and start serving."""
        load_notebook(self.ynotebook, content)
        self._task = asyncio.create_task(self.yroom.start())
        await self.yroom.started.wait()
        await self.yroom.ydoc_observed.wait()

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
