"""One document's Y room: the shared document, its clients' sync and autosave.

A notebook room also holds the reducer and the writer of its kernel output.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyter_ydoc import YNotebook
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import Doc

from ..outputs.ops import KernelMessage, OutputDict
from ..outputs.reducer import OutputLimits, OutputReducer
from ..store.autosave import Autosaver
from ..store.documents import RoomKey, sha256_of, stamp_of
from ..store.persistence import RoomPersistence
from ..store.spill import SpillStore
from ..store.ystore import UpdateStore
from ..ydoc.writer import SERVER_ORIGIN, OutputWriter, truncation_marker
from .cells import CellIndex
from .protocol import CLOSE_BAD_REQUEST, SYNC_MESSAGE, FrameReader
from .sync import AWARENESS_INTERVAL, EMPTY_UPDATE, AnswerCache, Client, SyncRoom

__all__ = ["DocumentRoom", "NotebookRoom"]

_SERVER_RESTARTED: KernelMessage = {
    "header": {"msg_type": "error"},
    "content": {
        "ename": "ServerRestarted",
        "evalue": "the server restarted while this cell ran; later output was lost",
        "traceback": ["ServerRestarted: the server restarted while this cell ran"],
    },
}
_IDLE: KernelMessage = {"header": {"msg_type": "status"}, "content": {"execution_state": "idle"}}

log = logging.getLogger(__name__)

SYNC_STEP1 = 0

#: Saves a room's document and returns the file's new hash, if known.
SaveRoom = Callable[["DocumentRoom"], Awaitable[str | None]]


class DocumentRoom:
    """A live document shared by every client of it.

    Attributes:
        key: The room's name, parsed: the document kind and the file id, which
            jupyter-server-fileid keeps across renames.
        doc: The shared document.
    """

    def __init__(
        self,
        key: RoomKey,
        save: SaveRoom,
        *,
        autosave_delay: float,
        store: UpdateStore | None = None,
        squash_after: float | None = None,
        answers: AnswerCache | None = None,
        awareness_interval: float = AWARENESS_INTERVAL,
    ) -> None:
        self.key = key
        self.doc: YBaseDoc = key.kind.new_document()
        self.persistence = (
            RoomPersistence(store, key.name, self.doc.ydoc) if store is not None else None
        )
        self._squash_after = squash_after
        #: Whether the document was rebuilt from the update store (not only from disk).
        self.restored = False
        #: Hash of the file as last loaded or saved by this room (to see outside changes).
        self.file_hash: str | None = None
        #: Its modification time and size then: a file that still has them is unchanged.
        self.file_stamp: tuple[Any, Any] | None = None
        #: Those of a later file this room could not read (another view saved text that
        #: is no notebook): the room does not save over it, nor log it again.
        self.unreadable_stamp: tuple[Any, Any] | None = None
        #: Tries every client update on a shadow copy before the room applies it.
        self.guard = key.kind.guard(self.doc)
        self.sync = SyncRoom(self.doc.ydoc, self._on_bad_message, answers, awareness_interval)
        self.autosaver = Autosaver(
            self.doc, lambda: key.kind.snapshot(self.doc), lambda: save(self), autosave_delay
        )
        #: Executions of this document's cells that are queued or running.
        self.busy = 0
        #: The room's awareness (see SyncRoom.awareness), also the document's
        #: ``awareness``, as jupyter-server-ydoc gives it.
        self.awareness = self.doc.awareness = self.sync.awareness

    @property
    def name(self) -> str:
        """The room name, ``{format}:{type}:{file_id}``; a notebook's document id."""
        return self.key.name

    @property
    def clients(self) -> set[Client]:
        return self.sync.clients

    # jupyter-server-ydoc's names, which extensions use (see ydoc_outputs.collaboration).
    @property
    def room_id(self) -> str:
        return self.key.name

    @property
    def ydoc(self) -> Doc[Any]:
        return self.doc.ydoc

    @property
    def _document(self) -> YBaseDoc:
        return self.doc

    @property
    def file_format(self) -> str:
        return self.key.kind.format

    @property
    def file_type(self) -> str:
        return self.key.kind.type

    async def start(self, content: Any, path: str, disk_is_ours: bool) -> None:
        """Load the file at ``path`` (``content``, from the contents manager); start serving.

        With an update store, the document is first rebuilt from its stored updates.
        The file is then loaded on top (a granular update: unchanged cells are kept)
        unless ``disk_is_ours``, i.e. it is what this room last saved or loaded: after a
        crash the store holds newer output than the file. :meth:`saw_file` comes first.
        """
        if self.persistence is not None:
            self.restored = await self.persistence.restore()
            if self.restored:
                self.persistence.start()  # the file may load on top: store that delta
        if not (self.restored and disk_is_ours):
            self.key.kind.load(self.doc, content)
        with self.doc.ydoc.transaction(origin=SERVER_ORIGIN):
            self.doc.path = path
        # A new document had no observer while it loaded (each one would have encoded
        # the load's update): it is encoded once, for the store and the first client.
        state = None if self.restored else self.doc.ydoc.get_update()
        if self.persistence is not None and not self.restored:
            self.persistence.start(state)
        self.sync.start(state)
        self.autosaver.start()
        if self.restored:
            self.autosaver.check_soon()  # the store may hold output the file has not

    def saw_file(self, model: dict[str, Any]) -> None:
        """The file is as ``model`` (from the contents manager, with its hash) describes
        it, because this room just loaded or saved it."""
        self.file_hash = model.get("hash")
        self.file_stamp = stamp_of(model)
        self.autosaver.mark_on_disk(sha256_of(model))

    async def serve(self, client: Client) -> None:
        """Serve one websocket client until it disconnects."""
        await self.sync.serve(client)

    def admit(self, message: bytes) -> None:
        """Check a client's sync message right before the room applies it.

        Raises:
            UpdateRefused: the message carries an update the room must not apply.
        """
        if len(message) < 2 or message[0] != SYNC_MESSAGE or message[1] == SYNC_STEP1:
            return
        start, end = FrameReader(message, 2).var_bytes()  # checked by check_message
        update = message[start:end]
        if update != EMPTY_UPDATE:
            self.guard.admit(update)
            if self.guard.changed_structure:
                # A page reads some of a cell (its trust, after "Trust Notebook") only
                # when it builds it: a fresh client must get such a change in the same
                # step 2 as the cell, not after a kept answer that predates it.
                self.sync.forget_answer()

    def close_clients(self, code: int, reason: str) -> None:
        """Close every client's websocket (e.g. the file was deleted)."""
        for client in list(self.clients):
            client.close(code, reason)

    async def stop(self) -> None:
        """Save what is unsaved, then stop the room."""
        await self.autosaver.stop()
        self.guard.reset()
        if self.persistence is not None:
            await self.persistence.stop(self._squash_after)
        self.sync.stop()

    def _on_bad_message(self, exc: Exception, client: Client) -> None:
        log.warning("closing a client of %s after a bad message: %r", self.name, exc)
        client.close(CLOSE_BAD_REQUEST, "malformed message")


class NotebookRoom(DocumentRoom):
    """A notebook room, into which the server writes kernel output.

    Attributes:
        reducer: Turns this notebook's kernel messages into output operations.
        writer: Applies those operations to ``ynotebook``.
    """

    def __init__(
        self,
        key: RoomKey,
        save: SaveRoom,
        *,
        autosave_delay: float,
        limits: OutputLimits,
        store: UpdateStore | None = None,
        squash_after: float | None = None,
        answers: AnswerCache | None = None,
        awareness_interval: float = AWARENESS_INTERVAL,
        spill_root: Path | None = None,
        output_url: Callable[[str, str], str] | None = None,
        record_timing: bool = False,
        on_cells_changed: Callable[[NotebookRoom], None] | None = None,
    ) -> None:
        super().__init__(
            key,
            save,
            autosave_delay=autosave_delay,
            store=store,
            squash_after=squash_after,
            answers=answers,
            awareness_interval=awareness_interval,
        )
        self.reducer = OutputReducer(limits, record_timing=record_timing)
        self._on_cells_changed = on_cells_changed
        #: Outputs dropped from truncated cells (None: they are discarded).
        self.spill = (
            SpillStore(spill_root, key.name, former=key.file_id) if spill_root is not None else None
        )

        def marker(cell_id: str) -> OutputDict:
            url = output_url(self.name, cell_id) if output_url is not None else None
            return truncation_marker(limits.cell_output_chars, url)

        # A fresh client's kept answer predates the trust: it would build the cell from
        # it untrusted, and the change after would not reach its model.
        #: Where each cell is and which ones a page marked to run (the execution order).
        self.cells = CellIndex(self.ynotebook.ycells)
        self.writer = OutputWriter(
            self.ynotebook,
            self.spill,
            marker,
            on_change=self.autosaver.mark_changed,
            on_trust=self.sync.forget_answer,
            find=self.cells.cell,
        )

    def admit(self, message: bytes) -> None:
        self.guard.changed_structure = False  # not an update: unchanged
        super().admit(message)
        if self.guard.changed_structure:
            self.cells.client_changed()
            if self._on_cells_changed is not None:
                self._on_cells_changed(self)

    async def stop(self) -> None:
        await super().stop()
        if self.spill is not None:
            self.spill.close()

    async def start(self, content: Any, path: str, disk_is_ours: bool) -> None:
        await super().start(content, path, disk_is_ours)
        if self.restored:
            self._end_interrupted_runs()

    def _end_interrupted_runs(self) -> None:
        """Cells left running by an earlier server process will get no more output."""
        for ycell in self.ynotebook.ycells:
            if ycell.get("cell_type") == "code" and ycell.get("execution_state") == "running":
                cell_id = str(ycell.get("id"))
                self.reducer.feed(cell_id, _SERVER_RESTARTED)
                self.reducer.feed(cell_id, _IDLE)
        self.writer.apply(self.reducer.flush())

    @property
    def ynotebook(self) -> YNotebook:
        assert isinstance(self.doc, YNotebook)
        return self.doc
