"""The batched activity watch keeps jupyter_server's rules (kernels/activity.py).

The rules are checked against jupyter_server's own ``record_activity``: both get the
same signed messages, one at a time, and must end in the same state after each. Then a
real kernel manager and ipykernel show the watch installed, and following a cell, on its
own and fed by another reader of the kernel's iopub (the runner's pump).
"""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import zmq
from jupyter_client.session import Session
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from ydoc_outputs.kernels.activity import (
    MAX_JOIN,
    BatchedActivityWatch,
    Junction,
    install,
    record_activity,
    record_messages,
)
from ydoc_outputs.kernels.iopub import decode
from ydoc_outputs.kernels.pump import IopubPump, KernelConnection

KEY = b"activity-test-key"
LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)


class Kernel:
    """What jupyter_server's ``start_watching_activity`` uses of a kernel's manager."""

    def __init__(self) -> None:
        self.session = Session(key=KEY)
        self.execution_state = "starting"
        self.last_activity = LONG_AGO
        self.callback: Callable[[list[bytes]], None] | None = None

    def connect_iopub(self) -> Kernel:
        return self  # stands for the ZMQStream, of which only on_recv is used

    def on_recv(self, callback: Callable[[list[bytes]], None]) -> None:
        self.callback = callback


def jupyter_servers_watch(manager: AsyncMappingKernelManager, kernel: Kernel) -> Any:
    """jupyter_server's own ``record_activity`` closure, for ``kernel``."""
    manager._kernels["k"] = kernel
    manager.start_watching_activity("k")
    assert kernel.callback is not None
    return kernel.callback


def frames(session: Session, msg_type: str, content: dict[str, Any], parent_type: str | None):
    parent = session.msg(parent_type, {}) if parent_type else {}
    message = session.msg(msg_type, content, parent=parent)
    return [b"routing-id", *session.serialize(message)]


MESSAGE_KINDS = [
    ("status", {"execution_state": "busy"}, "execute_request"),
    ("status", {"execution_state": "idle"}, "execute_request"),
    ("stream", {"name": "stdout", "text": "1\n"}, "execute_request"),
    ("status", {"execution_state": "busy"}, "comm_msg"),
    ("status", {"execution_state": "idle"}, "comm_msg"),
    ("comm_msg", {"comm_id": "c", "data": {}}, "comm_msg"),
    ("status", {"execution_state": "starting"}, None),
    ("status", {"execution_state": "idle"}, None),
    ("status", {"execution_state": "busy"}, "kernel_info_request"),
    ("status", {"execution_state": "idle"}, "kernel_info_request"),
    ("display_data", {"data": {}, "metadata": {}}, "comm_msg"),
    ("status", {"execution_state": "busy"}, "comm_info_request"),
    ("status", {"execution_state": "idle"}, "comm_info_request"),
    ("display_data", {"data": {}, "metadata": {}}, "comm_info_request"),
]


@pytest.mark.parametrize("seed", range(5))
def test_same_state_as_jupyter_servers_own_watch_after_every_message(seed: int) -> None:
    theirs, ours = Kernel(), Kernel()
    manager = AsyncMappingKernelManager()
    watch = jupyter_servers_watch(manager, theirs)
    session = Session(key=KEY)
    rng = random.Random(seed)
    for _ in range(300):
        message = frames(session, *rng.choice(MESSAGE_KINDS))
        theirs.last_activity = ours.last_activity = LONG_AGO
        watch(message)
        record_activity(manager, ours, Session(key=KEY), [message])
        assert ours.execution_state == theirs.execution_state
        assert (ours.last_activity != LONG_AGO) == (theirs.last_activity != LONG_AGO)


@pytest.mark.parametrize("seed", range(5))
def test_messages_a_feeder_unpacked_end_in_jupyter_servers_state(seed: int) -> None:
    theirs, ours, batched = Kernel(), Kernel(), Kernel()
    manager = AsyncMappingKernelManager()
    watch = jupyter_servers_watch(manager, theirs)
    session = Session(key=KEY)
    rng = random.Random(seed)
    decoded = []
    for _ in range(300):
        message = frames(session, *rng.choice(MESSAGE_KINDS))
        theirs.last_activity = ours.last_activity = LONG_AGO
        watch(message)
        decoded.append(decode(session, message))
        record_messages(manager, ours, decoded[-1:])
        assert ours.execution_state == theirs.execution_state
        assert (ours.last_activity != LONG_AGO) == (theirs.last_activity != LONG_AGO)
    record_messages(manager, batched, decoded)
    assert batched.execution_state == theirs.execution_state
    # A status without a state counts as activity and changes nothing, as on the socket.
    record_messages(manager, batched, [{"msg_type": "status", "content": {}}])
    assert batched.execution_state == theirs.execution_state


class Handover:
    """The messages a watch records when a feeder joins it through a :class:`Junction`."""

    def __init__(self) -> None:
        self.junction = Junction()
        self.joined = False
        self.recorded: list[int] = []

    def own(self, messages: list[int]) -> None:
        for i in messages:
            if self.joined:
                return  # dropped: the feeder has them
            self.recorded.append(i)
            self.take(self.junction.own(i))

    def fed(self, messages: list[int]) -> None:
        if self.joined:
            self.recorded += messages
        else:
            self.take(self.junction.fed([(i, (i, None, None)) for i in messages]))

    def take(self, joined: list[Any] | None) -> None:
        if joined is not None:
            self.joined = True
            self.recorded += [entry[0] for entry in joined]


@pytest.mark.parametrize("seed", range(200))
def test_the_feeder_takes_over_with_no_message_lost_twice_or_out_of_order(seed: int) -> None:
    """Two readers of one stream: the watch's from the start, the feeder's from a later
    subscription; each reads at its own pace. Whatever the interleaving, the recorded
    messages are the stream itself, once each, in order, and they join."""
    rng = random.Random(seed)
    count = rng.randrange(1, 60)
    subscribed = rng.randrange(0, count)  # the feeder misses what came before
    published = own_read = fed_read = 0
    handover = Handover()
    while own_read < count or fed_read < count:
        step = rng.random()
        if step < 0.4 and published < count:
            published += rng.randrange(1, 6)
            published = min(published, count)
        elif step < 0.7 and own_read < published and not handover.joined:
            take = rng.randrange(1, published - own_read + 1)
            handover.own(list(range(own_read, own_read + take)))
            own_read += take
        elif fed_read < published:
            start = max(fed_read, subscribed)
            take = rng.randrange(1, published - fed_read + 1)
            if start < fed_read + take:
                handover.fed(list(range(start, fed_read + take)))
            fed_read += take
        elif handover.joined:
            own_read = count  # the watch's socket is unsubscribed: it reads no more
    assert handover.recorded == list(range(count))
    assert handover.joined or count - 1 < subscribed


def test_a_watch_far_behind_joins_later() -> None:
    junction = Junction()
    assert junction.fed([(i, (i, None, None)) for i in range(MAX_JOIN)]) is None
    assert junction.fed([(MAX_JOIN, (MAX_JOIN, None, None))]) is None  # forgot the start
    assert junction.own(5) is None
    assert junction.own(MAX_JOIN) == []
    assert Junction(last_own=3).fed([(i, (i, None, None)) for i in range(6)]) == [
        (4, None, None),
        (5, None, None),
    ]


def test_a_batch_ends_where_its_messages_one_by_one_end() -> None:
    one_by_one, batched = Kernel(), Kernel()
    manager = AsyncMappingKernelManager()
    session = Session(key=KEY)
    rng = random.Random(7)
    batch = [frames(session, *rng.choice(MESSAGE_KINDS)) for _ in range(200)]
    for message in batch:
        record_activity(manager, one_by_one, session, [message])
    # As the watch reads them: zmq frames, not copied into bytes.
    record_activity(manager, batched, session, [[zmq.Frame(f) for f in m] for m in batch])
    assert batched.execution_state == one_by_one.execution_state
    assert batched.last_activity != LONG_AGO
    assert manager.last_kernel_activity == batched.last_activity


def test_forged_and_malformed_messages_change_nothing() -> None:
    kernel = Kernel()
    kernel.execution_state = "idle"
    manager = AsyncMappingKernelManager()
    forger = Session(key=b"not-the-key")
    forged = frames(forger, "status", {"execution_state": "busy"}, "execute_request")
    session = Session(key=KEY)
    no_state = frames(session, "status", {}, "execute_request")
    garbage = [b"<IDS|MSG>", b"sig", b"{", b"{}", b"{}", b"{}"]
    record_activity(manager, kernel, session, [forged, garbage, [b"no delimiter"]])
    assert (kernel.execution_state, kernel.last_activity) == ("idle", LONG_AGO)
    record_activity(manager, kernel, session, [no_state])  # activity, but no state to take
    assert kernel.execution_state == "idle"
    assert kernel.last_activity != LONG_AGO


@pytest.fixture
async def kernels(tmp_path: Path) -> AsyncIterator[AsyncMappingKernelManager]:
    manager = AsyncMappingKernelManager(connection_dir=str(tmp_path))
    assert install(manager)
    yield manager
    await manager.shutdown_all(now=True)


async def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), timeout)


async def test_a_real_kernel_is_watched_busy_then_idle(kernels: AsyncMappingKernelManager):
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    kernel = kernels.get_kernel(kernel_id)
    watch = kernel._activity_stream
    assert isinstance(watch, BatchedActivityWatch)
    before = kernel.last_activity

    client = kernel.client()
    client.start_channels()
    try:
        # The watch's subscription reaches the kernel some time after it connects (zmq):
        # requests are sent until one is seen.
        async def subscribed() -> None:
            while kernel.last_activity == before:
                client.execute("pass")
                await asyncio.sleep(0.05)

        await asyncio.wait_for(subscribed(), 30)
        await wait_for(lambda: kernel.execution_state == "idle")
        seen = kernel.last_activity
        client.execute("import time; print('x', flush=True); time.sleep(1)")
        await wait_for(lambda: kernel.execution_state == "busy")
        assert kernel.last_activity > seen
        await wait_for(lambda: kernel.execution_state == "idle")
        assert kernels.last_kernel_activity == kernel.last_activity
    finally:
        client.stop_channels()

    # Shutting the kernel down closes the watch (jupyter_server's stop_watching_activity).
    await kernels.shutdown_kernel(kernel_id)
    assert watch.socket.closed
    await wait_for(lambda: watch._task.done())


async def test_a_restart_on_new_ports_gets_a_new_watch(kernels: AsyncMappingKernelManager):
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    kernel = kernels.get_kernel(kernel_id)
    first = kernel._activity_stream
    # jupyter_server stops and starts watching when a restart changes the ports.
    kernels.stop_watching_activity(kernel_id)
    kernels.start_watching_activity(kernel_id)
    second = kernel._activity_stream
    assert first.socket.closed
    assert isinstance(second, BatchedActivityWatch) and second is not first
    restarted = datetime.now(timezone.utc)
    await kernels.restart_kernel(kernel_id)
    assert isinstance(kernel._activity_stream, BatchedActivityWatch)
    # The watch's socket reconnects to the new kernel on its own, some time after the
    # kernel binds (zmq), so requests are sent until one's replies are seen.
    client = kernel.client()
    client.start_channels()
    try:

        async def seen() -> None:
            while kernel.last_activity <= restarted or kernel.execution_state != "idle":
                client.execute("pass")
                await asyncio.sleep(0.1)

        await asyncio.wait_for(seen(), 30)
    finally:
        client.stop_channels()


class RecordingSocket:
    """Delegates to the watch's socket and keeps a weak reference to each frame read."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self.frames: list[Any] = []
        self.largest = 0

    def recv_multipart(self, *args: Any, **kwargs: Any) -> list[Any]:
        parts = self._socket.recv_multipart(*args, **kwargs)
        self.frames.extend(weakref.ref(part) for part in parts)
        self.largest = max(self.largest, *(len(part.bytes) for part in parts))
        return parts


async def test_output_read_by_the_watch_is_not_kept(kernels: AsyncMappingKernelManager):
    # The watch reads frames without copying them: they are the kernel's messages, which
    # can be megabytes of output. After the output stops, none may stay alive.
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    kernel = kernels.get_kernel(kernel_id)
    watch = kernel._activity_stream
    assert isinstance(watch, BatchedActivityWatch)
    recorder = RecordingSocket(watch._shadow)
    watch._shadow = recorder
    client = kernel.client()
    client.start_channels()
    try:
        before = kernel.last_activity

        async def subscribed() -> None:
            while kernel.last_activity == before:
                client.execute("pass")
                await asyncio.sleep(0.05)

        await asyncio.wait_for(subscribed(), 30)
        client.execute("print('x' * 5_000_000)")
        await wait_for(lambda: recorder.largest > 5_000_000)
        await wait_for(lambda: kernel.execution_state == "idle")
        gc.collect()
        await wait_for(lambda: all(ref() is None for ref in recorder.frames), timeout=5)
    finally:
        client.stop_channels()


async def test_the_pump_feeds_the_watch_which_then_leaves_it_the_reading(
    kernels: AsyncMappingKernelManager,
):
    """The runner's pump hands the watch each batch it read (KernelConnection.note_activity):
    once the two readings meet, the watch's socket is unsubscribed and the state follows
    the kernel through the pump's reading; when the pump's connection closes, the watch
    reads on its own again."""
    kernel_id = await kernels.start_kernel(kernel_name="python3")
    kernel = kernels.get_kernel(kernel_id)
    watch = kernel._activity_stream
    assert isinstance(watch, BatchedActivityWatch)
    own: list[int] = []
    ready = watch._ready

    def counted() -> list[list[zmq.Frame]]:
        batch = ready()
        own.append(len(batch))
        return batch

    watch._ready = counted  # type: ignore[method-assign]
    connection = KernelConnection(kernel, kernel_id)
    await connection.open()

    async def handle(batch: list[Any]) -> None:
        pass

    pump = asyncio.create_task(IopubPump(connection, handle, batch_interval=0.01).run())
    client = connection.client
    try:

        async def joined() -> None:
            while not watch.fed:
                client.execute("print('x', flush=True)")
                await asyncio.sleep(0.05)

        await asyncio.wait_for(joined(), 30)
        await wait_for(lambda: kernel.execution_state == "idle")
        await asyncio.sleep(0.3)  # what was on its way to the watch's socket has come
        read_before = sum(own)
        seen = kernel.last_activity
        client.execute("import time\nfor i in range(200): print(i, flush=True)\ntime.sleep(0.5)")
        await wait_for(lambda: kernel.execution_state == "busy")
        assert kernel.last_activity > seen
        await wait_for(lambda: kernel.execution_state == "idle")
        assert kernels.last_kernel_activity == kernel.last_activity
        assert sum(own) == read_before  # the kernel sent the watch nothing meanwhile
    finally:
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        connection.close()

    # The pump's connection closed: the watch reads on its own again.
    assert not watch.fed
    other = kernel.client()
    other.start_channels()
    try:

        async def followed() -> None:
            seen = kernel.last_activity
            while kernel.last_activity == seen:
                other.execute("pass")  # until the watch's subscription is through again
                await asyncio.sleep(0.05)

        await asyncio.wait_for(followed(), 30)
        await wait_for(lambda: kernel.execution_state == "idle")
        assert sum(own) > read_before
    finally:
        other.stop_channels()
