"""Keep Python's full garbage collections short in a long-lived server.

A full collection walks every container object the process tracks. Jupyter Server starts
with about 200,000 of them (modules, classes, functions, its configuration), all of which
live as long as the process. Under steady output a full collection still comes now and
then (about once in a 5 s fan-out run), and it paused the event loop for 80-110 ms on this
project's 2-core machine: every client of every room then got its output that much later
(a single pause puts the p99 latency of a 5 s run near 50 ms). Freezing what exists once
the server has started moves those objects out of the collector's generations, so later
full collections walk only what was made since. Frozen objects are never collected: the
cost is that garbage cycles among the start-up objects stay in memory, which start-up
does not make.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_long_lived"]


def freeze_long_lived() -> int:
    """Collect, then freeze every object the collector tracks; return how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
