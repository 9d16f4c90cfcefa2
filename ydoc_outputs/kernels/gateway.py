"""A remote kernel's state (``execution_state``, ``last_activity``, ``connections``) as
jupyter_server reports it, kept right by the server's own reading of the kernel's iopub.

With ``--GatewayClient.url`` (Kernel Gateway, Enterprise Gateway) jupyter_server's kernel
manager reads no kernel's iopub: each kernel's ``GatewayKernelManager`` holds the model
the gateway last returned (``.kernel``), and ``GET api/kernels/{id}`` answers that model
as it is. Only ``refresh_model`` fetches it anew: listing all kernels (``GET
api/kernels``, and the idle culler before each pass) and ``is_alive()``. The runner's
monitor asks ``is_alive()`` while a cell runs (monitor.py), so the model was last
fetched in the middle of the run and said ``busy`` (with the activity of that moment)
until something listed the kernels; a cell shorter than one poll left it ``starting``.

Two fixes, for every gateway kernel the server runs cells on:

- The runner's pump reads every iopub message of the kernel already, over the
  gateway's websocket. It hands each batch here (:meth:`GatewayActivityWatch.feed`,
  as it does to the activity watch of a local kernel, activity.py), which applies
  jupyter_server's own rules to it and writes the state into the model at once: the
  model says ``idle`` before the document says the cell has ended. From the first
  batch on, a refresh from the gateway (which reads the same messages on a socket of
  its own, with its own lag, and after a restart on new ports not at all) does not move
  ``execution_state`` back to what the gateway saw, and ``last_activity`` is the later
  of the two. The runner keeps reading the kernel for as long as the server manages it
  (it reconnects after faults).
- The gateway counts the server's own websocket as a connection of the kernel: a
  kernel the server ever ran a cell on showed ``connections: 1`` with no page open, and
  jupyter_server's culler (``cull_connected`` off by default) never culled it. While
  that websocket is open, it is not counted.

A gateway kernel the server runs no cell on is left as jupyter_server keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from jupyter_server.gateway.managers import GatewayKernelManager

from ..outputs.ops import KernelMessage
from .activity import record_messages

__all__ = [
    "GatewayActivityWatch",
    "KernelGone",
    "connect_client",
    "gateway_watch_of",
    "is_gateway_kernel",
]

log = logging.getLogger(__name__)

#: How a gateway writes ``last_activity`` (and how ``refresh_model`` reads it back).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class _State:
    """The state the server's own reading gives: what jupyter_server's rules update."""

    def __init__(self, execution_state: Any, last_activity: datetime) -> None:
        self.execution_state = execution_state
        self.last_activity = last_activity


class GatewayActivityWatch:
    """Keeps a gateway kernel's model as the server's own reading of its iopub says.

    Args:
        kernel: The kernel's ``GatewayKernelManager``; its parent is jupyter_server's
            ``GatewayMappingKernelManager`` (``track_message_type``,
            ``last_kernel_activity``, the connection counts).
    """

    def __init__(self, kernel: Any) -> None:
        self._kernel = kernel
        self._manager = kernel.parent
        #: The reader that feeds the watch (the runner's connection) while it is open.
        self._feeder: object | None = None
        #: What the server's reading says, from the model as it was before it began.
        self._state = _State(kernel.execution_state, kernel.last_activity)
        refresh: Callable[..., Awaitable[Any]] = kernel.refresh_model

        async def refresh_model(model: Any = None) -> Any:
            refreshed = await refresh(model)
            if refreshed:
                self._overlay(refreshed)
            return refreshed

        kernel.refresh_model = refresh_model

    @property
    def fed(self) -> bool:
        """Whether a reader of the kernel's iopub feeds the watch now (its connection,
        which the gateway counts, is open)."""
        return self._feeder is not None

    def feed(self, feeder: object, messages: Sequence[KernelMessage]) -> None:
        """Record ``messages``, which ``feeder`` read from the kernel's iopub, after
        every message it read before.

        A new feeder (the runner's client replaced after a fault) goes on from the
        state the last one left, not from the gateway's: after a restart on new ports
        the gateway's own reading of the kernel stays on the old ones, and its model
        said ``busy`` for good.
        """
        self._feeder = feeder
        start = 0
        for i, message in enumerate(messages):
            state = _restart_state(message)
            if state is not None:
                record_messages(self._manager, self._state, messages[start:i])
                self._state.execution_state = state
                start = i + 1
        record_messages(self._manager, self._state, messages[start:] if start else messages)
        self._publish(self._kernel.kernel)

    def release(self, feeder: object) -> None:
        """``feeder`` reads no more (its connection closed): it is counted no more."""
        if feeder is self._feeder:
            self._feeder = None

    def _overlay(self, model: dict[str, Any]) -> None:
        """A model just fetched from the gateway, with what the server's reading knows."""
        kernel = self._kernel
        self._state.last_activity = max(self._state.last_activity, kernel.last_activity)
        self._publish(model)
        connections = model.get("connections")
        if isinstance(connections, int) and self.fed:
            # The server's own websocket to the gateway: not a client of the kernel.
            model["connections"] = max(connections - 1, 0)
            counts = getattr(self._manager, "_kernel_connections", None)
            if isinstance(counts, dict) and kernel.kernel_id in counts:
                counts[kernel.kernel_id] = model["connections"]

    def _publish(self, model: Any) -> None:
        """Write the state into the kernel manager and into ``model`` (``GET
        api/kernels`` answers that dict itself)."""
        kernel, state = self._kernel, self._state
        kernel.execution_state = state.execution_state
        kernel.last_activity = state.last_activity
        if isinstance(model, dict):
            model["execution_state"] = state.execution_state
            model["last_activity"] = state.last_activity.astimezone(timezone.utc).strftime(
                TIME_FORMAT
            )


def _restart_state(message: KernelMessage) -> str | None:
    """``starting`` if ``message`` is a gateway's own news that its restarter replaces
    the dead kernel with a new process (``status: restarting``, no parent), else None.

    jupyter_server's kernel websocket sends it. Its activity rules take a status without
    a parent for the answer to a tracked request: the state stayed ``restarting`` until
    the next cell, whatever the new process said. As ``starting``, the first status of
    the new process makes it ``idle``. (``dead``, the restarter giving up, the rules
    record as it is, and jupyter_server's culler shuts such a kernel down.)
    """
    if message.get("msg_type") != "status" or (message.get("parent_header") or {}).get("msg_id"):
        return None
    content = message.get("content")
    restarting = isinstance(content, dict) and content.get("execution_state") == "restarting"
    return "starting" if restarting else None


def is_gateway_kernel(kernel: Any) -> bool:
    """Whether ``kernel`` (a kernel manager) is a gateway's."""
    return isinstance(kernel, GatewayKernelManager)


def gateway_watch_of(kernel: Any) -> GatewayActivityWatch | None:
    """The activity watch of a gateway kernel (made on first use), else None."""
    if not is_gateway_kernel(kernel):
        return None
    watch = getattr(kernel, "_ydoc_outputs_activity", None)
    if not isinstance(watch, GatewayActivityWatch):
        watch = GatewayActivityWatch(kernel)
        kernel._ydoc_outputs_activity = watch
    return watch


class KernelGone(Exception):
    """The gateway no longer has the kernel (shut down or culled there)."""


async def connect_client(kernel: Any, started: Awaitable[Any]) -> None:
    """Finish ``started``, a gateway client's ``start_channels()``, without blocking the
    event loop; first make sure the gateway still has ``kernel``.

    The client connects its websocket with a blocking call (websocket-client), and the
    gateway completes the handshake only once the kernel answers a ``kernel_info``: a
    second or two during a restart, and the whole timeout (``KERNEL_LAUNCH_TIMEOUT``,
    40 s) for a kernel being shut down there. In the event loop that froze the server.
    It runs in a daemon thread of its own, which never holds up the server's exit.

    Raises:
        KernelGone: The gateway answered 404 for the kernel. The server forgets it, as
            its next listing of the gateway's kernels would, so that its runner stops.
    """
    refresh = getattr(kernel, "refresh_model", None)
    if refresh is not None and await refresh() is None:
        manager = kernel.parent
        with contextlib.suppress(Exception):
            manager.remove_kernel(kernel.kernel_id)
        log.warning("kernel %s is gone from the gateway; forgotten", kernel.kernel_id)
        if asyncio.iscoroutine(started):
            started.close()
        raise KernelGone(kernel.kernel_id)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    async def await_started() -> None:
        await started

    def finish(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            asyncio.run(await_started())
        except BaseException as e:
            error = e
        with contextlib.suppress(RuntimeError):  # the server's loop has closed
            loop.call_soon_threadsafe(finish, error)

    threading.Thread(target=run, name=f"gateway-connect-{kernel.kernel_id}", daemon=True).start()
    await done
