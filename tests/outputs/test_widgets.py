"""WidgetStates: the widget models of a kernel from its comm messages, and the saved
widget state of the models a notebook's outputs show."""

from __future__ import annotations

import base64
from typing import Any

from ydoc_outputs.outputs.ops import KernelMessage
from ydoc_outputs.outputs.widgets import (
    STATE_MIMETYPE,
    WidgetStates,
)


def comm_open(
    comm_id: str,
    state: dict[str, Any],
    target: str = "jupyter.widget",
    buffers: list[bytes] | None = None,
    paths: list[Any] | None = None,
) -> KernelMessage:
    return {
        "header": {"msg_type": "comm_open"},
        "content": {"comm_id": comm_id, "target_name": target,
                    "data": {"state": state, "buffer_paths": paths or []}},
        "buffers": buffers or [],
    }  # fmt: skip


def comm_msg(
    comm_id: str,
    state: dict[str, Any],
    method: str = "update",
    buffers: list[bytes] | None = None,
    paths: list[Any] | None = None,
) -> KernelMessage:
    return {
        "header": {"msg_type": "comm_msg"},
        "content": {"comm_id": comm_id,
                    "data": {"method": method, "state": state, "buffer_paths": paths or []}},
        "buffers": buffers or [],
    }  # fmt: skip


def comm_close(comm_id: str) -> KernelMessage:
    return {"header": {"msg_type": "comm_close"}, "content": {"comm_id": comm_id, "data": {}}}


def model(name: str, **state: Any) -> dict[str, Any]:
    return {"_model_name": name, "_model_module": "@jupyter-widgets/controls",
            "_model_module_version": "2.0.0", **state}  # fmt: skip


def tqdm_bar(states: WidgetStates, n: int) -> None:
    """What tqdm.notebook opens: an HBox of a label, a progress bar and a label, each
    with a layout."""
    for i in ("l1", "l2", "l3", "l4"):
        states.feed(comm_open(i, {"_model_name": "LayoutModel",
                                  "_model_module": "@jupyter-widgets/base",
                                  "_model_module_version": "2.0.0"}))  # fmt: skip
    states.feed(comm_open("prefix", model("HTMLModel", value="", layout="IPY_MODEL_l1")))
    states.feed(comm_open("bar", model("FloatProgressModel", value=0, max=n,
                                       layout="IPY_MODEL_l2")))  # fmt: skip
    states.feed(comm_open("suffix", model("HTMLModel", value=f" 0/{n}", layout="IPY_MODEL_l3")))
    states.feed(comm_open("box", model("HBoxModel", layout="IPY_MODEL_l4",
                                       children=["IPY_MODEL_prefix", "IPY_MODEL_bar",
                                                 "IPY_MODEL_suffix"])))  # fmt: skip


def test_the_saved_state_holds_the_shown_models_and_what_they_name():
    states = WidgetStates()
    tqdm_bar(states, 60)
    states.feed(comm_open("other", model("IntSliderModel", value=3)))  # not shown
    for i in range(1, 61):
        assert states.feed(comm_msg("bar", {"value": i}))
        assert states.feed(comm_msg("suffix", {"value": f" {i}/60"}))
    doc = states.saved_state(["box"])
    assert doc["version_major"] == 2 and doc["version_minor"] == 0
    assert set(doc["state"]) == {"box", "prefix", "bar", "suffix", "l1", "l2", "l3", "l4"}
    assert doc["state"]["bar"]["state"]["value"] == 60
    assert doc["state"]["suffix"]["state"]["value"] == " 60/60"
    entry = doc["state"]["box"]
    assert (entry["model_name"], entry["model_module"], entry["model_module_version"]) == (
        "HBoxModel", "@jupyter-widgets/controls", "2.0.0",
    )  # fmt: skip


def test_only_widget_comms_and_their_updates_count():
    states = WidgetStates()
    assert not states.feed(comm_open("c", {"x": 1}, target="jupyter.widget.control"))
    assert not states.feed(comm_msg("c", {"x": 2}))  # a comm it does not know
    assert states.feed(comm_open("w", model("IntSliderModel", value=1)))
    assert not states.feed(comm_msg("w", {"value": 2}, method="request_state"))
    assert not states.feed({"header": {"msg_type": "stream"}, "content": {"text": "x"}})
    assert states.feed(comm_msg("w", {"value": 5}, method="echo_update"))  # a page's change
    assert states.saved_state(["w"])["state"]["w"]["state"]["value"] == 5
    assert states.feed(comm_close("w"))
    assert states.saved_state(["w"])["state"] == {}
    assert len(states) == 0


def test_binary_values_are_saved_base64_at_their_path():
    states = WidgetStates()
    states.feed(comm_open("img", model("ImageModel", value=None), buffers=[b"\x89PNG"],
                          paths=[["value"]]))  # fmt: skip
    [buffer] = states.saved_state(["img"])["state"]["img"]["buffers"]
    assert buffer == {"path": ["value"], "data": base64.b64encode(b"\x89PNG").decode(),
                      "encoding": "base64"}  # fmt: skip
    states.feed(comm_msg("img", {"value": None}, buffers=[b"GIF8"], paths=[["value"]]))
    [buffer] = states.saved_state(["img"])["state"]["img"]["buffers"]
    assert base64.b64decode(buffer["data"]) == b"GIF8"
    states.feed(comm_msg("img", {"value": "plain now"}))  # no buffer at that key any more
    assert "buffers" not in states.saved_state(["img"])["state"]["img"]


def test_the_current_state_is_what_an_update_carries():
    states = WidgetStates()
    assert states.current("img") is None
    states.feed(comm_open("img", model("ImageModel", width="10"), buffers=[b"\x89PNG"],
                          paths=[["value"]]))  # fmt: skip
    states.feed(comm_msg("img", {"width": "20"}))
    state, paths, buffers = states.current("img")  # type: ignore[misc]
    assert state["width"] == "20" and state["_model_name"] == "ImageModel"
    assert "value" not in state and paths == [["value"]] and buffers == [b"\x89PNG"]


def test_a_model_the_kernel_does_not_know_keeps_its_saved_state():
    states = WidgetStates()
    tqdm_bar(states, 5)
    saved = {STATE_MIMETYPE: states.saved_state(["box"])}
    states.clear()  # the kernel restarted
    assert states.saved_state(["box"], saved) == saved[STATE_MIMETYPE]
    # A new model of the new process wins over a saved one of the same id.
    states.feed(comm_open("bar", model("FloatProgressModel", value=1, max=5)))
    assert states.saved_state(["box"], saved)["state"]["bar"]["state"]["value"] == 1
    assert states.saved_state([], saved)["state"] == {}


def test_state_is_bounded_per_model_and_per_kernel():
    states = WidgetStates(max_model_bytes=1000, max_bytes=3000)
    states.feed(comm_open("huge", model("PlotModel", data="x" * 2000)))
    assert "huge" not in states and states.dropped == 1
    for i in range(6):
        states.feed(comm_open(f"m{i}", model("TextModel", value="y" * 700)))
    # The oldest changed go first.
    assert [f"m{i}" in states for i in range(6)] == [False, False, True, True, True, True]
    states.feed(comm_msg("m2", {"value": "z"}))  # changed now: kept over m3
    states.feed(comm_open("m6", model("TextModel", value="y" * 700)))
    assert "m2" in states and "m3" not in states
    # What closed, replaced or shrunk models held is free again: four fit, as above.
    dropped = states.dropped
    for i in (2, 4, 5):
        states.feed(comm_close(f"m{i}"))
    states.feed(comm_open("m6", model("TextModel", value="y" * 700)))  # the same id anew
    states.feed(comm_msg("m6", {"value": ""}))  # shrunk
    for i in range(7, 10):
        states.feed(comm_open(f"m{i}", model("TextModel", value="y" * 700)))
    assert states.dropped == dropped
    assert all(f"m{i}" in states for i in (6, 7, 8, 9))
    states.feed(comm_msg("m6", {"value": "y" * 700}))  # grown again: four still fit
    assert states.dropped == dropped
    states.feed(comm_open("m10", model("TextModel", value="y" * 700)))  # the oldest goes
    assert states.dropped == dropped + 1 and "m7" not in states and "m6" in states


def test_an_output_widget_captures_while_its_msg_id_is_set():
    states = WidgetStates()
    states.feed(comm_open("out", model("OutputModel", msg_id="", outputs=[])))
    states.feed(comm_open("inner", model("OutputModel", msg_id="", outputs=[])))
    assert states.capturing("run-1") is None
    states.feed(comm_msg("out", {"msg_id": "run-1"}))  # with out:
    assert states.capturing("run-1") == "out"
    states.feed(comm_msg("inner", {"msg_id": "run-1"}))  # with inner: (nested)
    assert states.capturing("run-1") == "inner"
    states.feed(comm_msg("inner", {"msg_id": ""}))  # its end
    assert states.capturing("run-1") == "out"
    states.feed(comm_msg("out", {"outputs": [{"output_type": "stream", "name": "stdout",
                                              "text": "a"}]}))  # fmt: skip
    assert states.outputs("out")[0]["text"] == "a"
    states.feed(comm_close("out"))
    assert states.capturing("run-1") is None and states.outputs("out") == []
    # Only Output models capture.
    states.feed(comm_open("label", model("LabelModel", msg_id="run-2")))
    assert states.capturing("run-2") is None
