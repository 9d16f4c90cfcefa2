"""Keeps the widget models of one kernel from its iopub comm messages and writes the
state of those its notebooks show into their ``metadata.widgets``, at most once per
``interval`` while they change: a saved or exported notebook shows its widgets as they
last were (a tqdm bar at 60/60), with no page and after the kernel is gone."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..outputs.capture import apply_captured
from ..outputs.ops import KernelMessage
from ..outputs.widgets import WidgetStates
from ..rooms.manager import RoomManager
from ..ydoc.widgets import write_widget_state

__all__ = ["WIDGET_STATE_INTERVAL", "WidgetStateWriter"]

log = logging.getLogger(__name__)

#: Seconds between two writes of a notebook's widget state while its widgets change.
WIDGET_STATE_INTERVAL = 1.0


class WidgetStateWriter:
    """The widget models of one kernel, written into the notebooks it runs cells of."""

    def __init__(
        self,
        rooms: RoomManager,
        interval: float = WIDGET_STATE_INTERVAL,
        states: WidgetStates | None = None,
    ) -> None:
        self._rooms = rooms
        self._interval = interval
        self.states = states if states is not None else WidgetStates()
        #: Room names of the notebooks this kernel ran cells of.
        self._documents: set[str] = set()
        self._changed = False
        self._timer: asyncio.TimerHandle | None = None
        self._written_at = float("-inf")
        #: Output models given output by the server since the last take, and whether
        #: a clear_output(wait=True) waits in each.
        self._captured: set[str] = set()
        self._clear_pending: dict[str, bool] = {}
        #: Outputs captured in the current batch, not yet given to the models.
        self._working: dict[str, list[dict[str, Any]]] = {}

    def runs_cells_of(self, document_id: str) -> None:
        self._documents.add(document_id)

    def feed(self, msg: KernelMessage) -> None:
        """Take one iopub message; a change to a widget model is written soon."""
        if self.states.feed(msg):
            self._changed = True
            self._schedule()

    def capture(self, comm_id: str, msg: KernelMessage) -> list[dict[str, Any]]:
        """Put one output message into Output model ``comm_id``; its new ``outputs``.
        The model takes them at :meth:`settle_captured` (once per batch: sizing a
        model's whole state for each printed line would cost as much as the line times
        the outputs)."""
        current = self._working.get(comm_id)
        if current is None:
            current = self.states.outputs(comm_id)
        outputs, pending = apply_captured(current, self._clear_pending.get(comm_id, False), msg)
        self._clear_pending[comm_id] = pending
        self._working[comm_id] = outputs
        self._captured.add(comm_id)
        return outputs

    def settle_captured(self) -> None:
        """Give the Output models what :meth:`capture` put into them since the last call."""
        working, self._working = self._working, {}
        for comm_id, outputs in working.items():
            self.feed({
                "header": {"msg_type": "comm_msg"},
                "content": {"comm_id": comm_id,
                            "data": {"method": "update", "state": {"outputs": outputs}}},
            })  # fmt: skip

    def take_captured(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """The Output models given output since the last take, with their outputs."""
        self.settle_captured()
        taken = [(c, self.states.outputs(c)) for c in self._captured if c in self.states]
        self._captured.clear()
        self._clear_pending.clear()
        return taken

    def kernel_started(self) -> None:
        """A new kernel process: the models of the last one are gone. What the
        notebooks saved of them stays until their views are cleared."""
        self.states.clear()

    def cell_ended(self) -> None:
        """Write now what changed, so that a finished cell's widgets are saved as they
        ended; and a view of a widget that a re-run cleared is forgotten."""
        if self._changed or len(self.states):
            self._changed = True
            self.flush()

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._written_at + self._interval - loop.time())
        self._timer = loop.call_later(delay, self.flush)

    def flush(self) -> None:
        """Write the widget state into every open notebook of this kernel now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._changed:
            return
        self._changed = False
        self._written_at = asyncio.get_running_loop().time()
        for name in list(self._documents):
            room = self._rooms.notebook_room(name)
            if room is None:
                continue  # written when a cell of it runs again, or from what was saved
            try:
                if write_widget_state(room.ynotebook, self.states):
                    room.autosaver.mark_changed()
            except Exception:
                log.exception("could not write the widget state of %s", name)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
