"""Give the memory of large kernel messages back to the operating system.

A runaway cell sends stream messages of megabytes, which jupyter_client decodes, the
reducer joins and pycrdt copies. glibc's malloc raises its mmap threshold each time such
a block is freed, so later large blocks come from the heap, where freed memory stays in
the process: 100 MB printed grew the server by 400 MB, though the document held 10 MB.
``malloc_trim`` returns the heap's free pages after a burst; it is a no-op where glibc is
not the allocator. (A low fixed mmap threshold, ``mallopt(M_MMAP_THRESHOLD)``, kept
memory lower but made ingest three times slower: every large block then costs a fresh
mapping. The one :func:`limit_retained_memory` sets is glibc's own ceiling.)

``malloc_trim`` does not reach one kind of free memory: the top of a thread's arena.
zmq's I/O threads allocate every message they receive, so a burst of output leaves free
memory at the top of their arenas, which glibc gives back only once it exceeds the trim
threshold; and glibc raises that threshold as large blocks are freed, up to 64 MiB. The
memory kept after 1 GB printed varied from run to run by tens of megabytes for this
reason. :func:`limit_retained_memory` fixes both thresholds: large blocks still come from
the heaps (the mmap threshold at glibc's own dynamic ceiling), and a heap's free top is
given back once it exceeds :data:`CALM_TRIM_THRESHOLD`; while a flood of output lasts,
:class:`HeapTrimmer` lowers that to a few megabytes. Not always: each large message sent
(a 10 MB notebook's sync) would then fault its memory in afresh, about 10 ms more per
10 MB.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

__all__ = [
    "CALM_TRIM_THRESHOLD",
    "MMAP_THRESHOLD",
    "HeapTrimmer",
    "limit_retained_memory",
    "release_free_memory",
    "set_trim_threshold",
]

log = logging.getLogger(__name__)


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim"):
        return None  # musl, macOS: another allocator
    return libc


_LIBC = _glibc()


#: glibc's ``mallopt`` parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks below this size come from malloc's heaps: the ceiling of glibc's own dynamic
#: threshold on 64-bit systems, which it reaches once blocks that large were freed.
MMAP_THRESHOLD = 32 << 20
#: The trim threshold when no flood of output is going on.
CALM_TRIM_THRESHOLD = 32 << 20


def limit_retained_memory(trim_threshold: int) -> bool:
    """Give a heap's free top back to the system once it exceeds ``trim_threshold``
    bytes, in every arena, however large the blocks freed before.

    Fixes glibc's mmap threshold at :data:`MMAP_THRESHOLD` and its trim threshold at
    ``trim_threshold`` (``mallopt``; both otherwise move with the largest block freed).
    Affects the whole process.

    Returns:
        Whether both were set: not where glibc is not the allocator.
    """
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    return bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and set_trim_threshold(
        trim_threshold
    )


def set_trim_threshold(trim_threshold: int) -> bool:
    """Set glibc's trim threshold (``mallopt(M_TRIM_THRESHOLD)``); whether it was set."""
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    return bool(_LIBC.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def release_free_memory() -> bool:
    """Return the free pages of malloc's heaps to the system (``malloc_trim(0)``).

    Costs a walk of the heap, about a millisecond per 100 MB: call it after a burst, not
    per message.

    Returns:
        Whether any memory was released.
    """
    if _LIBC is None:
        return False
    return bool(_LIBC.malloc_trim(0))


class HeapTrimmer:
    """Trims the heap every ``interval`` seconds while a lot of output flows, and twice
    more after it stopped: other consumers of iopub (jupyter_server's activity watcher)
    free their copies of a burst's messages only once they caught up.

    Args:
        interval: Seconds between two trims.
        threshold: Characters of output since the last trim that make one worth it.
        flood_trim_threshold: If set, the trimmer owns glibc's thresholds (see
            :func:`limit_retained_memory`): the trim threshold is this from the first
            trim of a flood until its last, and :data:`CALM_TRIM_THRESHOLD` (or this, if
            larger) otherwise, from construction on.
    """

    def __init__(
        self,
        interval: float = 2.0,
        threshold: int = 1 << 20,
        flood_trim_threshold: int | None = None,
    ) -> None:
        self._interval = interval
        self._threshold = threshold
        self._flood_trim_threshold = flood_trim_threshold
        self._calm_trim_threshold: int | None = None
        if flood_trim_threshold is not None:
            self._calm_trim_threshold = max(CALM_TRIM_THRESHOLD, flood_trim_threshold)
            limit_retained_memory(self._calm_trim_threshold)
        self._pending = 0
        self._after = 0  # trims still due after the output stopped
        self._timer: asyncio.TimerHandle | None = None
        self.flooding = False

    def note(self, chars: int) -> None:
        """``chars`` characters of output were handled."""
        self._pending += chars
        if self._timer is None and self._pending >= self._threshold:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._fire)
            if not self.flooding:
                self.flooding = True
                if self._flood_trim_threshold is not None:
                    set_trim_threshold(self._flood_trim_threshold)

    def _fire(self) -> None:
        self._timer = None
        if self._pending >= self._threshold:
            self._after = 2
        elif self._after:
            self._after -= 1
        else:
            self.flooding = False
            if self._calm_trim_threshold is not None:
                set_trim_threshold(self._calm_trim_threshold)
            return
        self._pending = 0
        release_free_memory()
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._fire)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
