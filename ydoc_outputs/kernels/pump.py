"""The server's connection to one kernel, and the one task that reads its iopub.

The pump reads iopub in batches (whatever has arrived) and hands each batch to its
owner, the runner, which writes it and may end the running cell. It is the only reader:
a fault noticed elsewhere wakes it (:meth:`IopubPump.drain`), and it first hands over
every message that has already arrived. It also replaces the client when asked, at a
moment when no read is pending. Each batch also goes to jupyter_server's activity watch
of the kernel (activity.py), which then reads none of it itself.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
from collections.abc import Awaitable, Callable
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.session import Session, new_id

from ..outputs.ops import KernelMessage
from .activity import ActivityWatch, watch_of
from .gateway import connect_client, gateway_watch_of
from .iopub import IopubReader, MessageDecoder, MessageError

__all__ = ["MAX_BACKOFF", "MAX_BATCH", "IopubPump", "KernelConnection"]

log = logging.getLogger(__name__)

#: Upper bound of iopub messages handed over as one batch (one Y transaction).
MAX_BATCH = 1000
#: Longest pause after repeated failures to read from the kernel.
MAX_BACKOFF = 1.0
#: iopub messages after which the next batch is read at once: a run's ``busy`` and
#: ``execute_input`` come first, and the output right behind them must not wait for
#: the batch interval (it made a Shift+Enter's first output 10 ms late).
_OPENING_TYPES = frozenset({"status", "execute_input"})


def _writes_output(batch: list[KernelMessage]) -> bool:
    """Whether a batch holds more than the messages that open or close a run."""
    return any(msg.get("header", {}).get("msg_type") not in _OPENING_TYPES for msg in batch)


class KernelConnection:
    """The server's own client of one kernel: shell and iopub, no stdin, no heartbeat.

    Attributes:
        client: The jupyter_client (or gateway) kernel client.
        reader: Reads the client's iopub (see iopub.py).
    """

    def __init__(
        self, kernel: Any, kernel_id: str, on_reply: Callable[[Any], None] | None = None
    ) -> None:
        """Args:
        kernel: The kernel manager's kernel (makes clients).
        kernel_id: Its id.
        on_reply: Called with each shell reply (the execute replies carry timing).
        """
        self._kernel = kernel
        self.kernel_id = kernel_id
        self._on_reply = on_reply
        self.client: Any = None
        self.reader: IopubReader | None = None
        self._shell_task: asyncio.Task[None] | None = None
        #: jupyter_server's activity watch of the kernel that the reader feeds.
        self._watch: ActivityWatch | None = None

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        return [self._shell_task] if self._shell_task is not None else []

    async def open(self) -> None:
        """Connect a new client."""
        client = self._kernel.client()
        context = getattr(client, "context", None)
        if isinstance(context, zmq.Context):
            # The client's own context (jupyter_client makes one per client). No limit to
            # what waits in its queues: with zmq's default of 1,000 messages, a kernel
            # that prints while the event loop is busy elsewhere (a large notebook
            # opening) soon fills them, and the kernel then drops output.
            context.setsockopt(zmq.RCVHWM, 0)
        session = getattr(client, "session", None)
        if session is not None:
            # The client's session is a clone of the kernel manager's, whose counter
            # starts again at 0: without an id of its own, our msg_ids would repeat
            # those of the manager's shutdown and kernel_info requests (and of our
            # previous client), and their replies would be taken for a cell's.
            session.session = new_id()
        # Only shell and iopub: no stdin (input() is refused) and no heartbeat thread.
        started = client.start_channels(
            shell=True, iopub=True, stdin=False, hb=False, control=False
        )
        if inspect.isawaitable(started):
            # The gateway's client connects a websocket, with a blocking call.
            await connect_client(self._kernel, started)
        self.client = client
        self.reader = IopubReader(client)
        self._shell_task = asyncio.create_task(_drain_shell(client, self._on_reply))

    def send_shell(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send a request on the shell channel; return its msg_id.

        A local kernel's request goes through the channel's asyncio socket, never
        ``Session.send``: that sends on a synchronous shadow of the socket, which takes
        the socket's edge-triggered wake-up for a reply that arrived meanwhile, and
        pyzmq's asyncio layer, which did not see the send, never looks again: the reply,
        and every later one, then waits in the socket until something else stirs it (a
        cell's timing never came, now and then, under load). The asyncio socket's own
        send looks again for the receive that waits (``_drain_shell``).
        """
        client = self.client
        msg = client.session.msg(msg_type, content)
        socket = getattr(getattr(client, "shell_channel", None), "socket", None)
        if isinstance(socket, zmq.asyncio.Socket):
            sent = cast("asyncio.Future[Any]", socket.send_multipart(client.session.serialize(msg)))
            if sent.done():
                sent.result()  # raises as Session.send would (a closed socket, say)
            else:  # queued: the kernel does not read (sent once it does)
                sent.add_done_callback(_log_failed_send)
        else:  # a gateway's channel: a websocket
            client.shell_channel.send(msg)
        msg_id: str = msg["header"]["msg_id"]
        return msg_id

    def note_activity(self, messages: list[KernelMessage]) -> None:
        """Hand what the reader has just read to jupyter_server's activity watch of the
        kernel (activity.py): it then reads none of it itself."""
        watch: ActivityWatch | None = watch_of(self._kernel)
        if watch is None:
            watch = gateway_watch_of(self._kernel)  # a remote kernel's model (gateway.py)
        if watch is None or self.reader is None:
            return
        if watch is not self._watch:
            if self._watch is not None:
                self._watch.release(self.reader)
            self._watch = watch  # a restart through the API makes a new one
        watch.feed(self.reader, messages)

    def close(self) -> None:
        """Close the client's sockets (linger 0: requests not yet sent are dropped)."""
        if self._watch is not None:
            # Before the socket goes: the watch reads on its own from now on.
            self._watch.release(self.reader)
            self._watch = None
        if self.reader is not None:
            self.reader.close()
        if self._shell_task is not None:
            self._shell_task.cancel()
            self._shell_task = None
        if self.client is not None:
            self.client.stop_channels()


def _log_failed_send(sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("a shell request could not be sent: %r", sent.exception())


async def _drain_shell(client: Any, on_reply: Callable[[Any], None] | None) -> None:
    # Replies must not pile up; iopub carries every output, a reply only its timing.
    # A local kernel's replies are received with the channel's asyncio socket, which
    # sees every send on it (KernelConnection.send_shell), and decoded as the iopub
    # reader decodes (iopub.py): jupyter_client's get_shell_msg polls first, then parses
    # every date with dateutil, 4% of the server's CPU in a Run All.
    socket = getattr(getattr(client, "shell_channel", None), "socket", None)
    session = getattr(client, "session", None)
    decoder: MessageDecoder | None = None
    if isinstance(socket, zmq.asyncio.Socket) and isinstance(session, Session):
        decoder = MessageDecoder(session)
    failures = 0
    while True:
        try:
            if decoder is not None:
                assert socket is not None
                try:
                    reply = decoder.decode(await socket.recv_multipart())
                except MessageError as e:
                    log.warning("dropping a shell message: %s", e)
                    continue
            else:
                reply = await client.get_shell_msg()
            failures = 0
            if on_reply is not None:
                on_reply(reply)
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            await asyncio.sleep(min(0.05 * 2**failures, MAX_BACKOFF))


class IopubPump:
    """Reads a connection's iopub and hands every batch to ``handle``.

    Args:
        connection: An open connection.
        handle: Called with each batch (possibly empty, after a wake-up), one at a time.
        batch_interval: Seconds to wait after a batch before reading again, so that
            output arriving meanwhile goes into one batch.
    """

    def __init__(
        self,
        connection: KernelConnection,
        handle: Callable[[list[KernelMessage]], Awaitable[None]],
        batch_interval: float,
    ) -> None:
        self._connection = connection
        self._handle = handle
        self._batch_interval = batch_interval
        self._wake = asyncio.Event()
        self._barriers: list[asyncio.Future[None]] = []
        #: Replace the client before the next read (see renew).
        self._renew = False

    def wake(self) -> None:
        """Hand over what has arrived now (with an empty batch if nothing has)."""
        self._wake.set()

    async def drain(self) -> None:
        """Return once every message that had arrived by now has been handled."""
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers.append(barrier)
        self._wake.set()
        await barrier

    def renew(self) -> None:
        """Replace the client with a new one, as soon as no read is pending.

        Closing the old client's sockets (linger 0) also discards requests still queued
        for a kernel that is gone: zmq would otherwise deliver them to its successor,
        which would run a cell the document says did not run.
        """
        self._renew = True
        self._wake.set()

    async def run(self) -> None:
        getter: asyncio.Future[list[KernelMessage]] | None = None
        waker: asyncio.Future[Any] | None = None
        failures = 0
        try:
            while True:
                batch: list[KernelMessage] = []
                barriers: list[asyncio.Future[None]] = []
                if getter is None and not failures and not self._wake.is_set():
                    # After a batch's pause, output is usually waiting: take it at once,
                    # without a read task and a wait (their passes of the event loop
                    # cost as much as a few messages each).
                    batch = await self._read_ready(MAX_BATCH)
                if not batch:
                    if getter is None:
                        assert self._connection.reader is not None
                        getter = asyncio.ensure_future(self._connection.reader.first())
                    if waker is None:
                        waker = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({getter, waker}, return_when=asyncio.FIRST_COMPLETED)
                    if waker.done():
                        waker = None
                        self._wake.clear()
                        barriers, self._barriers = self._barriers, []
                        if not getter.done():
                            # Nothing is lost: a pending read has taken no message yet.
                            getter.cancel()
                            await asyncio.wait({getter})
                    if getter.done():
                        failed = self._failed_read(getter)
                        failures = failures + 1 if failed else 0
                        if not failed and not getter.cancelled() and not getter.exception():
                            # (queue.Empty: a gateway's client found nothing in 1 s)
                            batch += getter.result()
                        getter = None
                        # No read is pending: take whatever else has arrived, at once.
                        batch += await self._read_ready(MAX_BATCH - len(batch))
                if batch:
                    try:
                        self._connection.note_activity(batch)
                    except Exception:
                        log.exception(
                            "cannot note the activity of kernel %s", self._connection.kernel_id
                        )
                try:
                    await self._handle(batch)
                except Exception:
                    log.exception(
                        "error while handling output of kernel %s", self._connection.kernel_id
                    )
                had_output = _writes_output(batch)
                # Not kept while waiting for more: its text may be megabytes, and the
                # next output may be hours away.
                del batch
                if self._renew and getter is None:
                    await self._swap_client()
                for barrier in barriers:
                    if not barrier.done():
                        barrier.set_result(None)
                if failures:
                    # A broken connection must not spin: back off until it heals.
                    await asyncio.sleep(min(0.05 * 2**failures, MAX_BACKOFF))
                else:
                    # Let websockets, keep-alives and HTTP requests run between batches.
                    # After output, wait a little: a kernel that prints one line per
                    # millisecond then costs one transaction, one stored update and one
                    # message per client per interval, not per line. After quiet, the
                    # first message is written at once; so is the output behind a batch
                    # that only opened or closed a run.
                    await asyncio.sleep(self._batch_interval if had_output else 0)
        finally:
            for future in (getter, waker):
                if future is not None:
                    future.cancel()

    def _failed_read(self, getter: asyncio.Future[list[KernelMessage]]) -> bool:
        """Whether a completed read failed (logged); an empty or cancelled one did not."""
        if getter.cancelled():
            return False
        error = getter.exception()
        if error is None or isinstance(error, queue.Empty):
            return False  # queue.Empty: the gateway's client gives up waiting after 1 s
        log.warning("cannot read output of kernel %s: %r", self._connection.kernel_id, error)
        return True

    async def _read_ready(self, limit: int) -> list[KernelMessage]:
        """Read up to ``limit`` messages that have arrived, without waiting for more."""
        assert self._connection.reader is not None
        try:
            return await self._connection.reader.more(limit)
        except Exception as e:
            log.warning("cannot read output of kernel %s: %r", self._connection.kernel_id, e)
            return []

    async def _swap_client(self) -> None:
        """Replace the client (while no read is pending)."""
        self._renew = False
        self._connection.close()
        try:
            await self._connection.open()
        except Exception:
            # Reads from the closed client fail and back off; then this is tried again.
            log.exception("cannot reconnect to kernel %s", self._connection.kernel_id)
            self._renew = True
