"""Writes the state of the widgets a notebook shows into its ``metadata.widgets``, as
JupyterLab's "Save Widget State" does, so that a saved or exported notebook shows them
without their kernel (a reopened page, nbconvert, voila, nbviewer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Array, Map

from ..outputs.widgets import STATE_MIMETYPE, VIEW_MIMETYPE, WidgetStates
from .writer import SERVER_ORIGIN

__all__ = ["widget_views", "write_widget_state"]

#: The outputs that can show a widget: ``display(w)``, or ``w`` as a cell's last line.
_VIEW_OUTPUT_TYPES = ("display_data", "execute_result")


def widget_views(ynotebook: YNotebook) -> Iterator[str]:
    """The model ids of the widget views in the notebook's outputs."""
    for ycell in ynotebook.ycells:
        outputs = ycell.get("outputs") if isinstance(ycell, Map) else None
        if not isinstance(outputs, Array):
            continue
        for output in outputs:
            if not isinstance(output, Map) or output.get("output_type") not in _VIEW_OUTPUT_TYPES:
                continue
            data = output.get("data")
            view = data.get(VIEW_MIMETYPE) if isinstance(data, dict) else None
            if isinstance(view, dict) and isinstance(view.get("model_id"), str):
                yield view["model_id"]


def write_widget_state(ynotebook: YNotebook, states: WidgetStates) -> bool:
    """Bring ``metadata.widgets`` up to date with ``states``; True if it changed.

    The state of a model that ``states`` does not know (the notebook was saved by an
    earlier kernel process) is kept as it was saved. A notebook whose outputs show no
    widget of ``states`` or of its saved state is left alone.
    """
    meta = ynotebook.ydoc.get("meta", type=Map)
    metadata = meta.get("metadata")
    if not isinstance(metadata, Map):
        return False
    saved: Any = metadata.get("widgets")
    if isinstance(saved, Map):
        saved = saved.to_py()
    old = saved if isinstance(saved, dict) else {}
    state = states.saved_state(widget_views(ynotebook), old)
    if state["state"]:
        new = {**old, STATE_MIMETYPE: state}
    elif STATE_MIMETYPE in old:
        new = {k: v for k, v in old.items() if k != STATE_MIMETYPE}
    else:
        return False
    if new == old:
        return False
    with ynotebook.ydoc.transaction(origin=SERVER_ORIGIN):
        if new:
            metadata["widgets"] = new
        else:
            del metadata["widgets"]
    return True
