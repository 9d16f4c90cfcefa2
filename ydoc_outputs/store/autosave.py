"""Autosave: write a room's document to disk through the contents manager, with no browser.

A change arms one timer; when it fires the current state is saved. Output that keeps
streaming therefore reaches the disk every ``delay`` seconds, not only when it stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc

from ..ydoc.writer import SERVER_ORIGIN

__all__ = ["Autosaver"]

log = logging.getLogger(__name__)


class Autosaver:
    """Saves one shared document ``delay`` seconds after it changes."""

    def __init__(
        self,
        doc: YBaseDoc,
        snapshot: Callable[[], str],
        save: Callable[[], Awaitable[str | None]],
        delay: float,
    ) -> None:
        """Watch nothing yet; :meth:`start` begins.

        Args:
            doc: The document to watch.
            snapshot: What saving the document would write now.
            save: Saves the document; returns the file's new hash, if known.
            delay: Seconds from a change to the save.
        """
        self._doc = doc
        self._snapshot = snapshot
        self._save = save
        self._delay = delay
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_saved: str | None = None
        #: Held while saving; an out-of-band reload takes it too, so the two never mix.
        self.lock = asyncio.Lock()
        self.enabled = True
        self._subscription: Any = None

    def start(self, saved_text: str | None = None) -> None:
        """Watch the document. ``saved_text`` is what the disk holds now, if known."""
        self._last_saved = saved_text
        self._subscription = self._doc.ydoc.observe(self._on_change)

    def _on_change(self, _event: Any) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._autosave())

    async def _autosave(self) -> None:
        try:
            await self.save_now()
        except Exception:
            log.exception("autosave failed")

    async def save_now(self) -> bool:
        """Save if the document differs from what was last saved. Return True if written.

        Raises:
            Exception: whatever the contents manager raised; the next change retries.
        """
        async with self.lock:
            text = self._snapshot()
            changed = self.enabled and text != self._last_saved
            file_hash = None
            if changed:
                file_hash = await self._save()
                self._last_saved = text
            with self._doc.ydoc.transaction(origin=SERVER_ORIGIN):
                if self._doc.dirty:
                    self._doc.dirty = False
                # The frontend reloads the file's metadata when the hash changes, so
                # that its own "file changed on disk" check knows about our saves.
                if file_hash is not None and self._doc.hash != file_hash:
                    self._doc.hash = file_hash
            return changed

    def mark_saved(self, text: str) -> None:
        """The file on disk now holds ``text`` (it was just loaded from it)."""
        self._last_saved = text

    async def stop(self) -> None:
        """Stop watching and save what is left to save (errors are logged)."""
        if self._subscription is not None:
            self._doc.ydoc.unobserve(self._subscription)
            self._subscription = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._autosave()
