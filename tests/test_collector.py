"""Freezing the server's start-up objects out of the garbage collector."""

from __future__ import annotations

import gc

from ydoc_outputs.collector import freeze_long_lived


def test_freezing_moves_every_tracked_object_out_of_the_collector() -> None:
    kept = [[i] for i in range(1000)]  # containers the collector tracks
    try:
        frozen = freeze_long_lived()
        assert frozen == gc.get_freeze_count() >= len(kept)
        # Nothing is left in the generations a full collection walks, these included.
        assert not any(any(o is kept[0] for o in generation) for generation in [gc.get_objects()])
    finally:
        gc.unfreeze()
    assert any(o is kept[0] for o in gc.get_objects())
