"""Memory a burst of output leaves in a thread's arena goes back to the system (heap.py).

zmq's I/O threads allocate every kernel message they receive. With glibc's own
thresholds, the free top of such a thread's arena stays in the process once large blocks
have been freed, and ``malloc_trim`` does not reach it; with ``limit_retained_memory`` it
goes back. Each case runs in a process of its own: the setting is process-wide.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from ydoc_outputs import heap

pytestmark = pytest.mark.skipif(
    heap._LIBC is None or not sys.platform.startswith("linux"), reason="glibc only"
)

BURST = r"""
import ctypes, sys, threading
from ydoc_outputs.heap import limit_retained_memory, release_free_memory

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
MB = 1 << 20

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

def burst():
    # One large message freed (glibc then raises its thresholds), then a burst of
    # 1 MB messages, all freed: as zmq's I/O thread during a flood of output.
    libc.free(libc.malloc(8 * MB))
    blocks = [libc.malloc(MB) for _ in range(12)]
    for block in blocks:
        ctypes.memset(block, 1, MB)
    for block in blocks:
        libc.free(block)

if sys.argv[1] == "limited":
    assert limit_retained_memory(4 * MB)
before = rss_kb()
thread = threading.Thread(target=burst)
thread.start()
thread.join()
release_free_memory()
print(rss_kb() - before)
"""


def kept_kb(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", BURST, mode], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_threads_free_memory_goes_back_with_the_limit() -> None:
    assert kept_kb("limited") < 4 * 1024


def test_without_the_limit_it_stays_even_after_malloc_trim() -> None:
    # Why the limit exists; if a glibc ever gives it back on its own, this says so.
    assert kept_kb("default") > 8 * 1024


async def test_the_low_threshold_lasts_as_long_as_the_flood(monkeypatch) -> None:
    # Lower only while output floods in: each large message sent otherwise (a big
    # notebook's sync) would fault its memory in afresh.
    calls: list[int] = []
    monkeypatch.setattr(heap, "limit_retained_memory", lambda t: calls.append(-t))
    monkeypatch.setattr(heap, "set_trim_threshold", calls.append)
    monkeypatch.setattr(heap, "release_free_memory", lambda: True)
    trimmer = heap.HeapTrimmer(interval=0.01, threshold=100, flood_trim_threshold=4096)
    assert calls == [-heap.CALM_TRIM_THRESHOLD]  # calm from the start
    calls.clear()
    trimmer.note(50)
    assert not trimmer.flooding and calls == []
    trimmer.note(50)
    assert trimmer.flooding and calls == [4096]
    for _ in range(3):  # output goes on: still the flood's threshold
        await asyncio.sleep(0.015)
        trimmer.note(200)
    assert trimmer.flooding and calls == [4096]
    for _ in range(200):  # then the output stops: two more trims, then calm again
        if not trimmer.flooding:
            break
        await asyncio.sleep(0.01)
    assert not trimmer.flooding and calls == [4096, heap.CALM_TRIM_THRESHOLD]
    trimmer.stop()
