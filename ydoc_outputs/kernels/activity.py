"""Watch each kernel's activity for jupyter_server at a fraction of its cost.

jupyter_server subscribes to every kernel's iopub to know when it was last active (for
the idle culler and ``GET api/kernels``) and whether it is busy. It does so with a
``ZMQStream``: one pass of the event loop per message, a copy of every frame, then
``Session.deserialize``, which unpacks the header, parent header and metadata and parses
their dates with dateutil. That costs about 60 µs a message on this project's 2-core
machine, as much as the server's whole handling of the output itself, for a state that
changes a few times a cell.

:func:`install` keeps jupyter_server's watching and its rules, and changes how messages
are read: after jupyter_server starts watching a kernel, its stream is replaced by a
:class:`BatchedActivityWatch` on a socket of its own, which waits with one poll, takes
every message that has arrived (without copying it), unpacks only the header and parent
header (and checks the signature and unpacks the content of ``status`` messages), then
sleeps :data:`INTERVAL`, so that a flood of output is read in a few batches a second.
``last_activity`` and ``execution_state`` are then at most that much late.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.connect import ConnectionFileMixin
from jupyter_client.session import Session
from zmq.eventloop.zmqstream import ZMQStream

from .iopub import DELIMITER, MessageError

#: A frame as received: bytes, or a zmq frame when not copied.
Frame = bytes | zmq.Frame

__all__ = ["INTERVAL", "MAX_BATCH", "BatchedActivityWatch", "install", "record_activity"]

log = logging.getLogger(__name__)

#: Seconds the watch sleeps after reading a batch (the first message after quiet is
#: read at once).
INTERVAL = 0.05
#: Most messages read in one pass of the event loop.
MAX_BATCH = 1000


class BatchedActivityWatch:
    """Stands in for jupyter_server's activity stream of one kernel
    (``kernel._activity_stream``): ``socket`` and ``close()`` are what it uses of it.

    Args:
        manager: jupyter_server's kernel manager: its ``track_message_type`` tells
            which messages count as activity, and its ``last_kernel_activity`` is set.
        kernel: The kernel's manager (``ServerKernelManager``), whose ``last_activity``
            and ``execution_state`` are kept.
    """

    def __init__(self, manager: Any, kernel: Any, interval: float = INTERVAL) -> None:
        socket = ConnectionFileMixin.connect_iopub(kernel)
        if not isinstance(socket, zmq.asyncio.Socket):
            socket.close(linger=0)
            raise TypeError(f"expected an asyncio socket, got {type(socket).__name__}")
        self.socket = socket
        self._shadow: zmq.Socket[Any] = zmq.Socket.shadow(socket.underlying)
        self._manager = manager
        self._kernel = kernel
        self._interval = interval
        self._session = Session(config=kernel.session.config, key=kernel.session.key)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def close(self, linger: int | None = 0) -> None:
        """Stop watching and close the socket."""
        self._task.cancel()
        if not self.socket.closed:
            self.socket.close(linger=linger)

    async def _watch(self) -> None:
        while not self.socket.closed:
            try:
                await self.socket.poll()  # until readable
                batch = self._ready()
            except zmq.ZMQError as e:
                if not self.socket.closed:
                    log.error("activity watch of a kernel stopped: %s", e)
                return
            try:
                record_activity(self._manager, self._kernel, self._session, batch)
            except Exception:
                log.exception("activity watch: cannot record a batch")
            full = len(batch) >= MAX_BATCH  # more is waiting: read on at once
            # Its frames are the messages themselves (megabytes of output, maybe): not
            # kept while waiting for the next, which may be hours away.
            del batch
            if not full:
                await asyncio.sleep(self._interval)

    def _ready(self) -> list[list[zmq.Frame]]:
        if self.socket.closed:
            # The shadow would use the freed socket: fail like a read of a closed one.
            raise zmq.ZMQError(zmq.ENOTSOCK)
        batch: list[list[zmq.Frame]] = []
        while len(batch) < MAX_BATCH:
            try:
                # Not copied: output can be megabytes a message, and only headers are read.
                batch.append(self._shadow.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                break
        return batch


def record_activity(
    manager: Any, kernel: Any, session: Session, batch: Sequence[Sequence[Frame]]
) -> None:
    """Apply jupyter_server's rules (its ``record_activity``) to messages read together.

    Only a ``status`` message, which changes ``execution_state``, has its signature
    checked and its content unpacked. Any other one only counts as activity: checking
    its signature would hash every byte of output once more, and only the kernel can
    publish on the socket this subscribes to.

    Args:
        manager: jupyter_server's kernel manager.
        kernel: The kernel's manager, with ``execution_state`` and ``last_activity``.
        session: Checks signatures and unpacks.
        batch: The messages' frames (bytes or zmq frames), oldest first.
    """
    unpack = session.unpack
    now: datetime | None = None
    for frames in batch:
        try:
            parts = _after_delimiter(frames)
            msg_type = unpack(_bytes(parts[1])).get("msg_type")
            parent_type = unpack(_bytes(parts[2])).get("msg_type")
            signed = [_bytes(part) for part in parts[1:5]] if msg_type == "status" else []
            if (
                signed
                and session.auth is not None
                and not hmac.compare_digest(_bytes(parts[0]), session.sign(signed))
            ):
                raise MessageError("invalid signature")
        except (MessageError, ValueError, AttributeError) as e:
            log.warning("activity watch: skipping an iopub message: %r", e)
            continue
        tracked = manager.track_message_type(parent_type)
        if tracked or manager.track_message_type(msg_type) or kernel.execution_state == "busy":
            if now is None:
                now = datetime.now(timezone.utc)
            manager.last_kernel_activity = kernel.last_activity = now
        if not signed:
            continue
        try:
            state = unpack(signed[3])["execution_state"]
        except (ValueError, KeyError, TypeError) as e:
            log.warning("activity watch: skipping a malformed status: %r", e)
            continue
        if tracked:
            kernel.execution_state = state
        elif kernel.execution_state == "starting" and state != "starting":
            # jupyter_server's rule: a status that answers no tracked request only
            # ends "starting", as "idle".
            kernel.execution_state = "idle"


def _bytes(frame: Frame) -> bytes:
    return frame if isinstance(frame, bytes) else frame.bytes


def _after_delimiter(frames: Sequence[Frame]) -> Sequence[Frame]:
    """Signature, header, parent header, metadata, content (and any buffers)."""
    for i, frame in enumerate(frames):
        if len(frame) == len(DELIMITER) and _bytes(frame) == DELIMITER:
            parts = frames[i + 1 :]
            if len(parts) < 5:
                raise MessageError(f"{len(parts)} frames after the delimiter, expected 5")
            return parts
    raise MessageError("no delimiter")


def install(manager: Any, interval: float = INTERVAL) -> bool:
    """Make ``manager`` (jupyter_server's kernel manager) watch its kernels' activity
    with :class:`BatchedActivityWatch`, from now on and for kernels already running.

    Returns:
        Whether it was installed: not for a manager that does not watch as
        jupyter_server 2 does (a gateway's, or an unknown subclass's own way).
    """
    if not all(
        callable(getattr(manager, name, None))
        for name in (
            "start_watching_activity",
            "track_message_type",
            "get_kernel",
            "list_kernel_ids",
        )
    ):
        return False
    original = manager.start_watching_activity

    def start_watching_activity(kernel_id: str) -> None:
        original(kernel_id)
        _replace_stream(manager, kernel_id, interval)

    manager.start_watching_activity = start_watching_activity
    for kernel_id in list(manager.list_kernel_ids()):
        _replace_stream(manager, kernel_id, interval)
    return True


def _replace_stream(manager: Any, kernel_id: str, interval: float) -> None:
    """Swap a kernel's activity ``ZMQStream`` for a batched watch; leave anything else."""
    kernel = manager.get_kernel(kernel_id)
    stream = getattr(kernel, "_activity_stream", None)
    if not isinstance(stream, ZMQStream) or not isinstance(kernel, ConnectionFileMixin):
        return
    try:
        watch = BatchedActivityWatch(manager, kernel, interval)
    except Exception as e:  # keep jupyter_server's own stream: slower, but watching
        log.warning("kernel %s: keeping jupyter_server's activity stream: %r", kernel_id, e)
        return
    stream.close()
    kernel._activity_stream = watch  # type: ignore[attr-defined]
