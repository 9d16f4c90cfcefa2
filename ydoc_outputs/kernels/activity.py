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

A kernel the server runs cells on is read in full by the runner's pump already. The pump
hands the watch each batch it has read and decoded (:meth:`BatchedActivityWatch.feed`);
once the two readings meet at a message both read, the watch unsubscribes its socket
and records what the pump hands it, until the pump's connection closes
(:meth:`BatchedActivityWatch.release`). The kernel then sends each message to one socket
of the server, not two, and nothing is received or unpacked twice.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

import zmq
import zmq.asyncio
from jupyter_client.connect import ConnectionFileMixin
from jupyter_client.session import Session
from zmq.eventloop.zmqstream import ZMQStream

from ..outputs.ops import KernelMessage
from .iopub import DELIMITER, MessageError

#: A frame as received: bytes, or a zmq frame when not copied.
Frame = bytes | zmq.Frame
#: What the rules read of a message: its type, its parent's type, and for a status its
#: execution state (``NO_STATE`` if it has none).
Entry = tuple[Any, Any, Any]
#: The state of a message that is not a status, or of a status without one.
NO_STATE = object()

__all__ = [
    "INTERVAL",
    "MAX_BATCH",
    "MAX_JOIN",
    "NO_STATE",
    "ActivityWatch",
    "BatchedActivityWatch",
    "Junction",
    "install",
    "record_activity",
    "record_messages",
    "watch_of",
]

log = logging.getLogger(__name__)

#: Seconds the watch sleeps after reading a batch (the first message after quiet is
#: read at once).
INTERVAL = 0.05
#: Most messages read in one pass of the event loop.
MAX_BATCH = 1000
#: Most messages a feeder's reading may run ahead of the watch's own while they join.
MAX_JOIN = 10_000


class ActivityWatch(Protocol):
    """What a reader of a kernel's whole iopub feeds: :class:`BatchedActivityWatch` for
    a local kernel, ``gateway.GatewayActivityWatch`` for a gateway's."""

    def feed(self, feeder: object, messages: Sequence[KernelMessage]) -> None:
        """Record ``messages``, which ``feeder`` read, after every message it read before."""

    def release(self, feeder: object) -> None:
        """``feeder`` reads no more."""


class Junction:
    """Where the watch's own reading of a kernel's iopub ends and a feeder's begins.

    Both read the same messages, in the same order, each from its own subscription,
    which begins and lags as it does. The watch records its own messages until the last
    one it recorded is one the feeder read too: from then on it records the feeder's
    messages after that one, and drops its own. No message is recorded twice and none
    out of order, so the state ends as jupyter_server's reading of every message would.
    """

    def __init__(self, last_own: Any = None) -> None:
        """``last_own``: the id of the last message the watch recorded, if any."""
        #: What the feeder read that the watch has not reached yet: ids and entries.
        self._fed: list[tuple[Any, Entry]] = []
        self._positions: dict[Any, int] = {}
        self._last_own = last_own

    def own(self, msg_id: Any) -> list[Entry] | None:
        """The watch has just recorded its own message ``msg_id``. If the feeder read
        it: what the feeder read after it, to record now (the join); else None."""
        self._last_own = msg_id
        position = self._positions.get(msg_id) if msg_id is not None else None
        if position is None:
            return None
        return [entry for _, entry in self._fed[position + 1 :]]

    def fed(self, items: Sequence[tuple[Any, Entry]]) -> list[Entry] | None:
        """The feeder read ``items`` (ids and entries), after what it read before. If
        the watch's last recorded message is among them: the entries after it, to record
        now (the join); else None, and they wait for the watch to reach them."""
        last = self._last_own
        if last is not None:
            for i, (msg_id, _) in enumerate(items):
                if msg_id == last:
                    return [entry for _, entry in items[i + 1 :]]
        if len(self._fed) + len(items) > MAX_JOIN:
            # The watch is far behind (or the two never shared a message): begin anew.
            self._fed, self._positions = [], {}
        for msg_id, entry in items:
            if msg_id is not None:
                self._positions.setdefault(msg_id, len(self._fed))
            self._fed.append((msg_id, entry))
        return None


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
        #: The reader that feeds the watch (see feed), and, until the watch has joined
        #: it, where the two readings meet; after that the socket is unsubscribed.
        self._feeder: object | None = None
        self._junction: Junction | None = None
        #: The id of the last message the watch recorded from its own socket.
        self._last_own: Any = None
        self._task = asyncio.get_running_loop().create_task(self._watch())

    @property
    def fed(self) -> bool:
        """Whether a feeder records for the watch now (its own socket unsubscribed)."""
        return self._feeder is not None and self._junction is None

    def close(self, linger: int | None = 0) -> None:
        """Stop watching and close the socket."""
        self._task.cancel()
        if not self.socket.closed:
            self.socket.close(linger=linger)

    def feed(self, feeder: object, messages: Sequence[KernelMessage]) -> None:
        """Record ``messages``, which ``feeder`` read from the kernel's iopub (and
        checked), after every message it read before: a reader of all of it, on a
        subscription of its own (the runner's pump).

        A new feeder is joined first (see :class:`Junction`); then the watch's own
        socket is unsubscribed, until :meth:`release`.
        """
        if self.socket.closed:
            return
        if feeder is not self._feeder:
            self._subscribe()
            self._feeder = feeder
            self._junction = Junction(self._last_own)
        junction = self._junction
        if junction is None:
            record_messages(self._manager, self._kernel, messages)
            return
        joined = junction.fed([(message.get("msg_id"), _entry(message)) for message in messages])
        if joined is not None:
            self._join(joined)
        else:
            self._read_own()  # to reach the feeder's messages sooner

    def release(self, feeder: object) -> None:
        """``feeder`` reads no more (its connection closed): the watch reads on its own."""
        if feeder is self._feeder:
            self._subscribe()
            self._feeder = None
            self._junction = None

    def _subscribe(self) -> None:
        if self.fed and not self.socket.closed:
            self.socket.setsockopt(zmq.SUBSCRIBE, b"")

    def _join(self, entries: list[Entry]) -> None:
        """The readings met: record the feeder's ``entries`` after the meeting point,
        and leave the rest to it."""
        self._junction = None
        if not self.socket.closed:
            # What still arrives here was sent before the kernel heard of this; the
            # feeder reads all of it.
            self.socket.setsockopt(zmq.UNSUBSCRIBE, b"")
        _apply(self._manager, self._kernel, entries)

    async def _watch(self) -> None:
        while not self.socket.closed:
            try:
                await self.socket.poll()  # until readable
                full = self._read_own()
            except zmq.ZMQError as e:
                if not self.socket.closed:
                    log.error("activity watch of a kernel stopped: %s", e)
                return
            if not full:  # else more is waiting: read on at once
                await asyncio.sleep(self._interval)

    def _read_own(self) -> bool:
        """Read and record what has arrived on the watch's own socket; whether it read
        a full batch (more is waiting)."""
        batch = self._ready()
        try:
            if self._junction is not None:
                self._record_joining(batch)
            elif not self.fed:
                entries = _frame_entries(self._session, batch)
                if entries:
                    _apply(self._manager, self._kernel, (entry for _, entry in entries))
                    self._last_own = entries[-1][0]
        except Exception:
            log.exception("activity watch: cannot record a batch")
        # Its frames are the messages themselves (megabytes of output, maybe): not kept
        # while waiting for the next, which may be hours away.
        return len(batch) >= MAX_BATCH

    def _record_joining(self, batch: Sequence[Sequence[Frame]]) -> None:
        """Record the watch's own messages one by one, until the feeder's reading joins."""
        junction = self._junction
        assert junction is not None
        for msg_id, entry in _frame_entries(self._session, batch):
            _apply(self._manager, self._kernel, [entry])
            self._last_own = msg_id
            joined = junction.own(msg_id)
            if joined is not None:
                self._join(joined)
                return  # the rest of the batch: the feeder's

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


def watch_of(kernel: Any) -> BatchedActivityWatch | None:
    """The batched activity watch of a kernel's manager, if it has one."""
    watch = getattr(kernel, "_activity_stream", None)
    return watch if isinstance(watch, BatchedActivityWatch) else None


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
    _apply(manager, kernel, (entry for _, entry in _frame_entries(session, batch)))


def _frame_entries(session: Session, batch: Sequence[Sequence[Frame]]) -> list[tuple[Any, Entry]]:
    """The ids and entries of messages as received; malformed ones are logged and
    skipped, and a status whose signature does not match too."""
    unpack = session.unpack
    entries: list[tuple[Any, Entry]] = []
    for frames in batch:
        try:
            parts = _after_delimiter(frames)
            header = unpack(_bytes(parts[1]))
            msg_type = header.get("msg_type")
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
        state = NO_STATE
        if signed:
            try:
                state = unpack(signed[3])["execution_state"]
            except (ValueError, KeyError, TypeError) as e:
                log.warning("activity watch: skipping a malformed status: %r", e)
        entries.append((header.get("msg_id"), (msg_type, parent_type, state)))
    return entries


def _entry(message: KernelMessage) -> Entry:
    """The entry of a message read and checked by a feeder."""
    msg_type = message.get("msg_type")
    parent = message.get("parent_header")
    parent_type = parent.get("msg_type") if isinstance(parent, dict) else None
    if msg_type != "status":
        return msg_type, parent_type, NO_STATE
    content = message.get("content")
    if isinstance(content, dict) and "execution_state" in content:
        return msg_type, parent_type, content["execution_state"]
    return msg_type, parent_type, NO_STATE


def record_messages(manager: Any, kernel: Any, messages: Iterable[KernelMessage]) -> None:
    """Apply jupyter_server's rules, as :func:`record_activity` does, to messages that a
    reader has already checked and unpacked (``msg_type``, ``parent_header``, and a
    status's ``content``)."""
    _apply(manager, kernel, map(_entry, messages))


def _apply(manager: Any, kernel: Any, entries: Iterable[Entry]) -> None:
    """jupyter_server's rules, message by message: any message counts as activity when
    it or its parent is of a tracked type, or the kernel is busy; a status answering a
    tracked request sets the execution state, and any other one only ends "starting".
    Every activity of one call has the same time, so the first one found is enough."""
    track = manager.track_message_type
    active = False
    for msg_type, parent_type, state in entries:
        if msg_type != "status":
            if not active and (
                kernel.execution_state == "busy" or track(parent_type) or track(msg_type)
            ):
                active = True
            continue
        tracked = track(parent_type)
        if not active and (tracked or track(msg_type) or kernel.execution_state == "busy"):
            active = True
        if state is NO_STATE:
            continue  # no state to take (malformed: logged where it was read)
        if tracked:
            kernel.execution_state = state
        elif kernel.execution_state == "starting" and state != "starting":
            # jupyter_server's rule: a status that answers no tracked request only
            # ends "starting", as "idle".
            kernel.execution_state = "idle"
    if active:
        manager.last_kernel_activity = kernel.last_activity = datetime.now(timezone.utc)


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
