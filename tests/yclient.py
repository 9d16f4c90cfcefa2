"""A minimal y-websocket client for tests: syncs a YNotebook with a room over a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import websockets
from jupyter_ydoc import YNotebook
from jupyter_ydoc.ybasedoc import YBaseDoc
from pycrdt import (
    Awareness,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)

from ydoc_outputs.store.documents import without_undo_history


class YClient:
    """One websocket client of a notebook room, holding its own copy of the document."""

    def __init__(self, url: str, document: YBaseDoc | None = None) -> None:
        self.url = url
        self.document = document if document is not None else YNotebook()
        # A page's undo manager is Yjs's. yrs's, which jupyter_ydoc gives this copy, can
        # panic recording a hostile edit ("attempt to divide by zero", the model walk's
        # seed 3841136470 in CI), which is not what a test of the server is about.
        without_undo_history(self.document)
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.raw: list[bytes] = []
        #: The page's awareness, merged by y-protocols' rules (pycrdt's implementation
        #: of them): every awareness update from the server is applied to it.
        self.awareness = Awareness(self.document.ydoc)
        #: Each awareness update received: (time.monotonic(), the update).
        self.awareness_received: list[tuple[float, bytes]] = []
        #: Called after each message from the server has been applied.
        self.listeners: list[Callable[[], None]] = []
        self._changed = asyncio.Condition()
        self._ws: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self._sending: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> YClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    async def connect(self, *, wait_synced: bool = True) -> None:
        self._step2_seen = False
        self._ws = await websockets.connect(self.url, max_size=None)
        self._task = asyncio.create_task(self._receive())
        self._sub = self.document.ydoc.observe(self._send_local_update)
        await self._safe_send(create_sync_message(self.document.ydoc))
        if wait_synced:
            await asyncio.wait(
                [
                    asyncio.ensure_future(self.synced.wait()),
                    asyncio.ensure_future(self.closed.wait()),
                ],
                timeout=30,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert self.synced.is_set(), (
                f"not synced (closed: {self.close_code} {self.close_reason})"
            )

    async def reconnect(self, url: str) -> None:
        """Connect again, e.g. to a restarted server, keeping this client's document."""
        self.url = url
        self.synced.clear()
        self.closed.clear()
        await self.connect()

    def _send_local_update(self, event: Any) -> None:
        if self._applying or self._ws is None:
            return
        task = asyncio.ensure_future(self._safe_send(create_update_message(event.update)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def flush(self) -> None:
        """Wait until the local updates made so far are handed to the websocket."""
        while self._sending:
            await asyncio.gather(*list(self._sending))

    _applying = False
    _step2_seen = False

    async def _safe_send(self, message: bytes) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(message)

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, str) or not message:
                    continue
                if message[0] == YMessageType.SYNC:
                    self._applying = True
                    try:
                        reply = handle_sync_message(message[1:], self.document.ydoc)
                    finally:
                        self._applying = False
                    if reply is not None:
                        await self._safe_send(reply)
                    if message[1] == YSyncMessageType.SYNC_STEP2 and not self.synced.is_set():
                        if self._step2_seen:
                            self.synced.set()
                        else:
                            # The server may follow its answer with the changes since
                            # it encoded the document: a second sync step 1 is answered
                            # after them, so once its step 2 is here, so are they.
                            self._step2_seen = True
                            await self._safe_send(create_sync_message(self.document.ydoc))
                elif message[0] == YMessageType.AWARENESS:
                    update = read_message(message[1:])
                    self.awareness_received.append((time.monotonic(), update))
                    self.awareness.apply_awareness_update(update, "remote")
                elif message[0] == 2:
                    self.raw.append(message)
                for listener in self.listeners:
                    listener()
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            if self._ws.close_code is not None:
                self.close_code = self._ws.close_code
                self.close_reason = self._ws.close_reason
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def set_awareness(self, state: dict[str, Any] | None) -> None:
        """Set this page's awareness state and send it, as y-websocket does (``None``: the
        goodbye a page sends when it closes)."""
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.awareness.client_id])
        await self._safe_send(create_awareness_message(update))

    @property
    def peers(self) -> dict[int, Any]:
        """The awareness states of the other clients, as this page holds them."""
        own = self.awareness.client_id
        return {cid: state for cid, state in self.awareness.states.items() if cid != own}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        """Wait until ``predicate()`` holds for this client's copy of the document."""

        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate() or self.closed.is_set())

        await asyncio.wait_for(check(), timeout)
        assert predicate(), f"connection closed: {self.close_code} {self.close_reason}"

    async def disconnect(self) -> None:
        if self._sub is not None:
            self.document.ydoc.unobserve(self._sub)
            self._sub = None
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- reading the document ------------------------------------------------------------

    @property
    def notebook(self) -> YNotebook:
        assert isinstance(self.document, YNotebook)
        return self.document

    def cell(self, cell_id: str) -> dict[str, Any]:
        for ycell in self.notebook.ycells:
            if ycell.get("id") == cell_id:
                value: dict[str, Any] = ycell.to_py()
                return value
        raise KeyError(cell_id)

    def outputs(self, cell_id: str) -> list[dict[str, Any]]:
        outputs: list[dict[str, Any]] = self.cell(cell_id).get("outputs", [])
        return outputs

    def state(self, cell_id: str) -> str | None:
        return self.cell(cell_id).get("execution_state")
