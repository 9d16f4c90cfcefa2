"""Autosave: write a room's document to disk through the contents manager, with no browser.

Kernel output arms one timer; when it fires the current state is saved. Output that
keeps streaming therefore reaches the disk every ``delay`` seconds, not only when it
stops. Any other change (a user's typing) is saved ``delay`` seconds after the last one,
as jupyter_server_ydoc does, so that a Ctrl+S right after typing does not meet a save
the page has not heard of yet. Saves come less often for a big notebook: a save costs
about 14 ms of CPU per MB (validation, ``nbformat.writes``, signing, hashing), so the
next one waits :data:`SAVE_SPACING` times as long as the last one took. Nothing is at
risk meanwhile: the update store keeps every change, and a room saves at once when it
closes or a client asks.

A ``delay`` of ``inf`` (jupyter_server_ydoc's ``document_save_delay = None``) never
saves on its own, not even when the room closes: the file is written only when a client
asks (Ctrl+S), and the update store keeps the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_ydoc.ybasedoc import YBaseDoc

from ..ydoc.writer import SERVER_ORIGIN

__all__ = ["Autosaver", "SaveDeferred"]

log = logging.getLogger(__name__)

#: After a save that took ``t`` seconds, the next autosave starts no sooner than
#: ``SAVE_SPACING * t`` after it ended: while a document keeps changing, saving takes
#: at most a twentieth of the time (a 10 MB notebook, 0.17 s a save: one every 3.4 s).
SAVE_SPACING = 19.0


class SaveDeferred(Exception):
    """The document must not be saved now, for a reason already logged (the file holds
    what another view saved on purpose and this one cannot read): the next change
    retries, quietly."""


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
            delay: Seconds from a change to the save; ``inf``: only :meth:`save_now`.
        """
        self._doc = doc
        self._snapshot = snapshot
        self._save = save
        self._delay = delay
        self._timer: asyncio.TimerHandle | None = None
        #: The event loop's time before which no autosave starts (see SAVE_SPACING).
        self._not_before = 0.0
        self._task: asyncio.Task[None] | None = None
        #: What the file holds, when this saved it; else the SHA-256 of what it holds.
        self._last_saved: str | None = None
        self._disk_sha256: str | None = None
        #: Held while saving; an out-of-band reload takes it too, so the two never mix.
        self.lock = asyncio.Lock()
        self.enabled = True
        self._subscription: Any = None
        #: A change not yet looked at by a save; and one known to change the file.
        self._pending = False
        self._content_changed = False
        #: Set while this writes the document's state (dirty, hash): not a change.
        self._writing_state = False

    def start(self) -> None:
        """Watch the document."""
        self._subscription = self._doc.ydoc.observe(self._on_change)

    def _on_change(self, _event: Any) -> None:
        if self._writing_state:
            return
        self._pending = True
        if math.isinf(self._delay):
            return
        if self._timer is not None:
            if self._content_changed:
                return  # output is saved a delay after it began, however fast it comes
            # Anything else (a user's typing) is saved a delay after it pauses, as
            # jupyter_server_ydoc does. Each save moves the file's hash away from the one
            # the page knows until it hears of the new one, and a Ctrl+S in that moment
            # shows JupyterLab's "File Changed" dialog: saving while the user types made
            # that likely for a Ctrl+S right after typing.
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        # The pause after the last save, known here, keeps the timer from firing (and a
        # task from waiting its turn) once per delay while a slow save's pause lasts;
        # _wait_for_turn covers a save still under way.
        delay = max(self._delay, self._not_before - loop.time())
        self._timer = loop.call_later(delay, self._fire)

    def mark_changed(self) -> None:
        """The last change is one the file must get (kernel output): the next save
        writes without first serializing the document to compare it with the file."""
        self._content_changed = True

    def check_soon(self) -> None:
        """Save after the delay if the document differs from the file, although it has
        not changed since it was loaded (it was restored from the update store)."""
        self._on_change(None)

    def _fire(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._autosave(spaced=True))

    async def _autosave(self, spaced: bool = False) -> None:
        try:
            if spaced:
                await self._wait_for_turn()
            await self.save_now()
        except SaveDeferred:
            pass
        except Exception:
            log.exception("autosave failed")

    async def _wait_for_turn(self) -> None:
        """Wait for a save under way to end, then for the pause it calls for."""
        loop = asyncio.get_running_loop()
        while True:
            if self.lock.locked():
                async with self.lock:
                    pass
                continue
            wait = self._not_before - loop.time()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def save_now(self) -> bool:
        """Save if the document changed and differs from the file. Return True if written.

        Raises:
            Exception: whatever the contents manager raised; the next change retries.
        """
        async with self.lock:
            if not self._pending:
                return False  # unchanged since loaded or last looked at
            certain = self._content_changed
            self._pending = self._content_changed = False
            try:
                # Serializing a 10 MB notebook takes about 100 ms of the event loop:
                # only done when the change may leave the file as it is (a state
                # change, an edit undone), not for every autosave of streaming output.
                text = None if certain else self._snapshot()
                changed = self.enabled and (text is None or not self._is_on_disk(text))
                file_hash = None
                if changed:
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    try:
                        file_hash = await self._save()
                    finally:
                        ended = loop.time()
                        self._not_before = ended + SAVE_SPACING * (ended - started)
                    self._last_saved = text
            except BaseException:
                self._pending = True
                self._content_changed = self._content_changed or certain
                raise
            self._writing_state = True
            try:
                with self._doc.ydoc.transaction(origin=SERVER_ORIGIN):
                    if self._doc.dirty:
                        self._doc.dirty = False
                    # The frontend reloads the file's metadata when the hash changes, so
                    # that its own "file changed on disk" check knows about our saves.
                    if file_hash is not None and self._doc.hash != file_hash:
                        self._doc.hash = file_hash
            finally:
                self._writing_state = False
            return changed

    def mark_on_disk(self, sha256: str | None) -> None:
        """The file on disk now has this SHA-256 hex digest, if known (it was just loaded
        or saved). Opening a file then never rewrites it, and costs no serialization: the
        next save compares the digest of what it would write with this one."""
        self._last_saved = None
        self._disk_sha256 = sha256

    def _is_on_disk(self, text: str) -> bool:
        if self._last_saved is not None:
            return text == self._last_saved
        digest = self._disk_sha256
        if digest is not None and hashlib.sha256(text.encode()).hexdigest() == digest:
            self._last_saved = text
            return True
        return False

    async def stop(self) -> None:
        """Stop watching and save what is left to save (errors are logged), unless only
        explicit saves are wanted; a document that did not change since it was loaded or
        saved costs nothing."""
        if self._subscription is not None:
            self._doc.ydoc.unobserve(self._subscription)
            self._subscription = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not math.isinf(self._delay):
            await self._autosave()
