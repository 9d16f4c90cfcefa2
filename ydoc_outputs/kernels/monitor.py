"""Watch one kernel's lifecycle through the server's kernel manager.

The kernel manager offers no event for "shut down", "restart begun" or "process
exited" (its restarter polls too, every 3 s), so the monitor takes a cheap snapshot
every ``interval`` seconds and hands it to its listener. ``is_alive()`` is asked only
while ``wants_alive()`` says a cell runs: for remote kernels it is a request to the
gateway. The restarter's callbacks are forwarded as soon as it fires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from jupyter_core.utils import ensure_async

from .faults import KernelSnapshot

__all__ = ["KernelMonitor"]

log = logging.getLogger(__name__)

#: Seconds between two snapshots: the upper bound of the fault detection latency.
POLL_INTERVAL = 0.2


class KernelMonitor:
    """Polls one kernel's state and reports every snapshot until the kernel is gone."""

    def __init__(
        self,
        kernel_id: str,
        kernel_manager: Any,
        *,
        on_snapshot: Callable[[KernelSnapshot], None],
        on_restarter: Callable[[bool], None],
        wants_alive: Callable[[], bool],
        interval: float = POLL_INTERVAL,
    ) -> None:
        """Watch ``kernel_id`` of ``kernel_manager`` (a jupyter_server kernel manager).

        Args:
            on_snapshot: Called with each snapshot, from the monitor's task.
            on_restarter: Called when the restarter finds the kernel dead, with True
                if it gives up (the kernel stays dead), False if it restarts it.
            wants_alive: Whether the next snapshot should check the process is alive.
            interval: Seconds between snapshots.
        """
        self.kernel_id = kernel_id
        self._manager = kernel_manager
        #: The kernel manager of this one kernel, as it was when the monitor started.
        self.kernel: Any = kernel_manager.get_kernel(kernel_id)
        self._on_snapshot = on_snapshot
        self._on_restarter = on_restarter
        self._wants_alive = wants_alive
        self._interval = interval
        self._changed = asyncio.Event()
        # The restarter's callbacks, kept to unregister these very objects.
        self._callbacks: dict[str, Callable[[], None]] = {
            "restart": lambda: self._on_restarter(False),
            "dead": lambda: self._on_restarter(True),
        }
        self._registered = False

    def snapshot(self) -> KernelSnapshot:
        """The kernel's state now, without the (possibly remote) liveness check."""
        present = (
            self.kernel_id in self._manager
            and self._manager.get_kernel(self.kernel_id) is self.kernel
        )
        provisioner = getattr(self.kernel, "provisioner", None)
        return KernelSnapshot(
            present=present,
            stopping=bool(getattr(self.kernel, "shutting_down", False)),
            process=getattr(provisioner, "process", None),
        )

    async def run(self) -> None:
        """Report snapshots until the kernel is no longer managed by the server."""
        self._register()
        try:
            while True:
                snapshot = self.snapshot()
                if snapshot.present and self._wants_alive():
                    alive = await self._is_alive()
                    snapshot = KernelSnapshot(
                        snapshot.present, snapshot.stopping, snapshot.process, alive
                    )
                try:
                    self._on_snapshot(snapshot)
                except Exception:
                    log.exception("error while watching kernel %s", self.kernel_id)
                self._changed.set()
                self._changed.clear()
                if not snapshot.present:
                    return
                await asyncio.sleep(self._interval)
        finally:
            self._unregister()

    async def next_snapshot(self) -> None:
        """Wait until the monitor has taken its next snapshot."""
        await self._changed.wait()

    async def _is_alive(self) -> bool | None:
        try:
            return bool(await ensure_async(self.kernel.is_alive()))
        except Exception:
            log.debug("cannot tell whether kernel %s is alive", self.kernel_id, exc_info=True)
            return None

    # -- the restarter -------------------------------------------------------------

    def _register(self) -> None:
        add = getattr(self.kernel, "add_restart_callback", None)
        if add is None:
            return
        # "restart": it found the process dead and restarts it; "dead": it gave up.
        for event, callback in self._callbacks.items():
            add(callback, event)
        self._registered = True

    def _unregister(self) -> None:
        if not self._registered:
            return
        self._registered = False
        remove = getattr(self.kernel, "remove_restart_callback", None)
        if remove is None:
            return
        for event, callback in self._callbacks.items():
            with contextlib.suppress(ValueError, KeyError):
                remove(callback, event)
