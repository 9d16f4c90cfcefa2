"""Keep one room's document in the update store: restore it on open, append every update.

Updates are queued as transactions commit and appended in order by one task, a batch
per SQLite transaction; the loss window of a killed server is the few milliseconds
between a transaction and its append.
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


class RoomPersistence:
    """Stores every update of one document under its file id."""

    def __init__(self, store: UpdateStore, doc_id: str, ydoc: Doc[Any]) -> None:
        self._store = store
        self._doc_id = doc_id
        self._ydoc = ydoc
        self._pending: list[bytes] = []
        self._flushing: asyncio.Task[None] | None = None
        self._subscription: Any = None

    async def restore(self) -> bool:
        """Apply the stored updates to the document; False if nothing was stored."""
        updates = await self._store.load(self._doc_id)
        if not updates:
            return False
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
            self._pending.append(state)
            self._flushing = asyncio.ensure_future(self._flush())

    def _on_update(self, event: Any) -> None:
        self._pending.append(event.update)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.append(self._doc_id, batch)
            except Exception:
                log.exception("could not store %d updates of %s", len(batch), self._doc_id)

    async def stop(self, squash_older_than: float | None) -> None:
        """Store what is pending, then squash history older than ``squash_older_than`` s."""
        if self._subscription is not None:
            self._ydoc.unobserve(self._subscription)
            self._subscription = None
        if self._flushing is not None:
            await self._flushing
        await self._flush()
        if squash_older_than is not None:
            await self._store.squash(self._doc_id, squash_older_than)
