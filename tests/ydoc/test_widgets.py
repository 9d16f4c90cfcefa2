"""write_widget_state: metadata.widgets of a YNotebook follows the widgets its outputs
show, keeps what it saved of models the kernel no longer knows, and is not rewritten
when nothing changed."""

from __future__ import annotations

from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Map

from tests.outputs.test_widgets import comm_msg, comm_open, model, tqdm_bar
from ydoc_outputs.outputs.widgets import STATE_MIMETYPE, VIEW_MIMETYPE, WidgetStates
from ydoc_outputs.ydoc.widgets import widget_views, write_widget_state


def notebook(outputs: list[dict[str, Any]], metadata: dict[str, Any] | None = None) -> YNotebook:
    nb = YNotebook()
    nb.set({"cells": [
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "IPY_MODEL_no"},
        {"cell_type": "code", "id": "c", "metadata": {}, "source": "", "outputs": outputs,
         "execution_count": 1},
    ], "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5})  # fmt: skip
    return nb


def view(model_id: str, output_type: str = "display_data") -> dict[str, Any]:
    data = {"text/plain": "HBox()", VIEW_MIMETYPE: {"model_id": model_id, "version_major": 2,
                                                     "version_minor": 0}}  # fmt: skip
    out: dict[str, Any] = {"output_type": output_type, "data": data, "metadata": {}}
    if output_type == "execute_result":
        out["execution_count"] = 1
    return out


def widgets_of(nb: YNotebook) -> Any:
    return nb.get()["metadata"].get("widgets")


def test_views_are_the_widget_outputs_of_code_cells():
    nb = notebook([
        {"output_type": "stream", "name": "stdout", "text": "IPY_MODEL_x"},
        view("box"), view("s", "execute_result"),
        {"output_type": "display_data", "data": {"image/png": "AAAA"}, "metadata": {}},
    ])  # fmt: skip
    assert list(widget_views(nb)) == ["box", "s"]


def test_the_state_of_shown_widgets_is_written_once_per_change():
    nb = notebook([view("box")])
    states = WidgetStates()
    tqdm_bar(states, 3)
    assert write_widget_state(nb, states)
    saved = widgets_of(nb)[STATE_MIMETYPE]
    assert set(saved["state"]) == {"box", "prefix", "bar", "suffix", "l1", "l2", "l3", "l4"}
    assert not write_widget_state(nb, states)  # nothing changed: no transaction
    states.feed(comm_msg("bar", {"value": 3}))
    assert write_widget_state(nb, states)
    assert widgets_of(nb)[STATE_MIMETYPE]["state"]["bar"]["state"]["value"] == 3


def test_a_notebook_without_widgets_is_left_alone():
    nb = notebook([{"output_type": "stream", "name": "stdout", "text": "hi"}])
    states = WidgetStates()
    states.feed(comm_open("w", model("IntSliderModel", value=1)))  # shown nowhere
    assert not write_widget_state(nb, states)
    assert widgets_of(nb) is None


def test_saved_state_stays_after_a_restart_and_goes_with_its_views():
    states = WidgetStates()
    tqdm_bar(states, 3)
    saved = {STATE_MIMETYPE: states.saved_state(["box"]), "other/mime": {"kept": True}}
    nb = notebook([view("box")], {"widgets": saved})
    assert not write_widget_state(nb, WidgetStates())  # a new kernel knows none of them
    assert widgets_of(nb)[STATE_MIMETYPE]["state"].keys() == saved[STATE_MIMETYPE]["state"].keys()
    nb.ycells[1]["outputs"].clear()  # the cell ran again, without the bar
    assert write_widget_state(nb, WidgetStates())
    assert widgets_of(nb) == {"other/mime": {"kept": True}}


def test_the_write_is_the_servers_and_cannot_be_undone():
    nb = notebook([view("box")])
    states = WidgetStates()
    tqdm_bar(states, 3)
    nb.undo_manager.clear()  # the notebook as loaded
    assert write_widget_state(nb, states)
    assert not nb.undo_manager.can_undo()
    assert isinstance(nb.ydoc.get("meta", type=Map)["metadata"], Map)
