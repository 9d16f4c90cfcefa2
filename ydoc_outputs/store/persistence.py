"""Keep one room's document in the update store: restore it on open, append every update.

Updates are queued as transactions commit and appended in order by one task, a batch
per SQLite transaction, at most ``STORE_DELAY`` after the first of the batch: a Run All
makes hundreds of small transactions a second, and handing each to the store's thread
alone cost more CPU than the transaction itself. The loss window of a killed server is
that delay plus the append's few milliseconds.

A room that stays open for days would grow its history without bound (every batch of
output is one more update, although the document keeps only the last
``cell_output_chars`` of a cell): once the updates appended since the last whole
document exceed ``COMPACT_FACTOR`` times its size (plus ``COMPACT_MIN_BYTES``), the
stored history is replaced by the document encoded as one update.

A room opened from its file stores the whole document only when it first changes (or
``BASE_DELAY`` seconds after opening, to free the encoding): until then the file holds
it all. Writing 100 MB to SQLite while the first client synced the room competed with
that sync for the CPU, and a notebook that is only read is never written to the store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pycrdt import Doc

from ..ydoc.writer import SERVER_ORIGIN
from .ystore import UpdateStore

__all__ = ["RoomPersistence"]

log = logging.getLogger(__name__)

#: Stored history may grow to this many times the document's encoded size...
COMPACT_FACTOR = 2
#: ...plus this many bytes, before it is replaced by the document (one update).
COMPACT_MIN_BYTES = 4 * 1024 * 1024
#: Seconds after opening from its file before an unchanged room's document is stored.
BASE_DELAY = 5.0
#: Seconds an update may wait for others to be appended with it.
STORE_DELAY = 0.02


class RoomPersistence:
    """Stores every update of one document under its room name (``{format}:{type}:{file_id}``).

    One file may have rooms of several kinds (a notebook and its text view): each has a
    history of its own, as a notebook's updates mean nothing to a text document.
    """

    def __init__(self, store: UpdateStore, doc_id: str, ydoc: Doc[Any]) -> None:
        self._store = store
        self._doc_id = doc_id
        self._ydoc = ydoc
        self._pending: list[bytes] = []
        self._flushing: asyncio.Task[None] | None = None
        self._flush_timer: asyncio.TimerHandle | None = None
        self._subscription: Any = None
        #: Bytes of the last whole document stored, and of the updates appended since.
        self._base_bytes = 0
        self._appended_bytes = 0
        self._compacting: asyncio.Future[int] | None = None
        self._compact_scheduled = False
        #: The whole document as opened from its file, until it is queued for the store.
        self._base: bytes | None = None
        self._base_timer: asyncio.TimerHandle | None = None
        #: How many times the history was compacted while open.
        self.compactions = 0

    async def restore(self) -> bool:
        """Apply the stored updates to the document; False if nothing was stored."""
        updates = await self._store.load(self._doc_id)
        if not updates:
            return False
        self._base_bytes = sum(len(update) for update in updates)
        # The server's origin keeps the restore out of users' undo stacks.
        with self._ydoc.transaction(origin=SERVER_ORIGIN):
            for update in updates:
                self._ydoc.apply_update(update)
        return True

    def start(self, state: bytes | None = None) -> None:
        """Append every later update of the document to the store, after ``state``, the
        whole document encoded as one update, if given (nothing was stored yet)."""
        self._subscription = self._ydoc.observe(self._on_update)
        if state is not None:
            self._base_bytes = len(state)
            self._base = state
            loop = asyncio.get_running_loop()
            self._base_timer = loop.call_later(BASE_DELAY, self._queue_base)

    def _queue_base(self) -> None:
        """Queue the opened document for the store, before any update made since."""
        if self._base_timer is not None:
            self._base_timer.cancel()
            self._base_timer = None
        if self._base is None:
            return
        self._pending.insert(0, self._base)
        self._base = None
        self._start_flush()

    def _on_update(self, event: Any) -> None:
        update: bytes = event.update
        self._queue_base()
        self._pending.append(update)
        if self._flush_timer is None and (self._flushing is None or self._flushing.done()):
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(STORE_DELAY, self._start_flush)
        self._appended_bytes += len(update)
        limit = COMPACT_FACTOR * self._base_bytes + COMPACT_MIN_BYTES
        if self._appended_bytes > limit and not self._compact_scheduled:
            # Not inside the transaction's observer: the document cannot be encoded there.
            self._compact_scheduled = True
            asyncio.get_running_loop().call_soon(self._compact)

    def _compact(self) -> None:
        self._compact_scheduled = False
        if self._subscription is None or (
            self._compacting is not None and not self._compacting.done()
        ):
            return  # stopped, or the last one is still being written: the next update
        state = self._ydoc.get_update()
        # Queued right after encoding: every update the store holds or was asked to
        # append so far is in ``state``; updates still pending are appended after it.
        self._compacting = self._store.compact(self._doc_id, state)
        self._compacting.add_done_callback(self._compacted)
        self._base_bytes = len(state)
        self._appended_bytes = 0

    def _compacted(self, future: asyncio.Future[int]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("could not compact the stored updates of %s: %r", self._doc_id, error)
        else:
            self.compactions += 1

    def _start_flush(self) -> None:
        """Append what is pending now (a running append takes it after its batch)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.append(self._doc_id, batch)
            except Exception:
                log.exception("could not store %d updates of %s", len(batch), self._doc_id)

    async def flush(self) -> None:
        """Store every update received so far."""
        self._start_flush()
        if self._flushing is not None:
            await self._flushing
        await self._flush()

    async def stop(self, squash_older_than: float | None) -> None:
        """Store what is pending, then squash history older than ``squash_older_than`` s."""
        if self._subscription is not None:
            self._ydoc.unobserve(self._subscription)
            self._subscription = None
        if self._base_timer is not None:
            # Never changed since it was opened from its file, which holds it all.
            self._base_timer.cancel()
            self._base_timer = None
            self._base = None
        self._start_flush()
        if self._flushing is not None:
            await self._flushing
        await self._flush()
        if self._compacting is not None:
            await asyncio.wait({self._compacting})
        if squash_older_than is not None:
            await self._store.squash(self._doc_id, squash_older_than)
