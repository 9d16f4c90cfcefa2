"""The widget models of one kernel, as its comm messages on iopub tell them, and the
state a notebook's outputs reference, in the format JupyterLab's "Save Widget State"
writes into ``metadata.widgets`` (and nbconvert, voila and nbviewer read).

ipywidgets keeps a model's state in the kernel and tells every frontend of it on iopub:
``comm_open`` creates a model, ``comm_msg`` with ``method`` "update" changes it (and,
since ipywidgets 8, "echo_update" repeats what a page changed), ``comm_close`` ends it.
The server's kernel client sees all of them, so it can know the latest state of every
model without a page.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from .ops import KernelMessage

__all__ = [
    "DEFAULT_MAX_MODEL_BYTES",
    "DEFAULT_MAX_STATE_BYTES",
    "STATE_MIMETYPE",
    "VIEW_MIMETYPE",
    "WIDGET_TARGET",
    "WidgetStates",
]

WIDGET_TARGET = "jupyter.widget"
VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"
STATE_MIMETYPE = "application/vnd.jupyter.widget-state+json"
#: How one model's state names another (an HBox its children, a widget its layout).
MODEL_REF = "IPY_MODEL_"
UPDATE_METHODS = ("update", "echo_update")

#: A model whose state is larger than this is not kept (a plot of millions of points).
DEFAULT_MAX_MODEL_BYTES = 4 << 20
#: All models of one kernel; past it, the models changed longest ago are forgotten.
DEFAULT_MAX_STATE_BYTES = 32 << 20


class _Model:
    __slots__ = ("buffers", "sizes", "state")

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        #: Binary values by their path in the state, base64-encoded.
        self.buffers: dict[tuple[Any, ...], str] = {}
        #: Approximate JSON size of each top-level key, and of each buffer.
        self.sizes: dict[Any, int] = {}

    @property
    def size(self) -> int:
        return sum(self.sizes.values())

    def apply(self, state: dict[str, Any], paths: list[Any], buffers: list[Any]) -> None:
        for key, value in state.items():
            self.state[key] = value
            self.sizes[key] = _json_size(value)
            for path in [p for p in self.buffers if p[0] == key]:
                del self.buffers[path]
                self.sizes.pop(path, None)
        for path, buffer in zip(paths, buffers, strict=False):
            if not isinstance(path, list) or not path:
                continue
            data = base64.b64encode(bytes(buffer)).decode("ascii")
            self.buffers[tuple(path)] = data
            self.sizes[tuple(path)] = len(data)

    def saved(self) -> dict[str, Any]:
        """This model as an entry of the widget-state format."""
        entry: dict[str, Any] = {
            "model_name": self.state.get("_model_name", ""),
            "model_module": self.state.get("_model_module", ""),
            "model_module_version": self.state.get("_model_module_version", ""),
            "state": dict(self.state),
        }
        if self.buffers:
            entry["buffers"] = [
                {"path": list(path), "data": data, "encoding": "base64"}
                for path, data in self.buffers.items()
            ]
        return entry


class WidgetStates:
    """The latest state of every widget model of one kernel."""

    def __init__(
        self,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        max_bytes: int = DEFAULT_MAX_STATE_BYTES,
    ) -> None:
        self._max_model_bytes = max_model_bytes
        self._max_bytes = max_bytes
        #: comm id (the model id) -> model, least recently changed first.
        self._models: OrderedDict[str, _Model] = OrderedDict()
        #: The sizes of all models kept, so that no message sums them.
        self._total = 0
        #: Models refused or forgotten for their size: they are not saved.
        self.dropped = 0
        #: request msg_id -> the Output models capturing its output, entered last last.
        self._capturing: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def current(self, model_id: str) -> tuple[dict[str, Any], list[list[Any]], list[bytes]] | None:
        """A model's whole state as an ``update`` message carries it: the state, the
        paths of its binary values and those values; None if the model is not kept."""
        model = self._models.get(model_id)
        if model is None:
            return None
        paths = [list(path) for path in model.buffers]
        buffers = [base64.b64decode(data) for data in model.buffers.values()]
        return dict(model.state), paths, buffers

    def clear(self) -> None:
        """The kernel's process is gone, and its models with it."""
        self._models.clear()
        self._total = 0
        self._capturing.clear()

    def capturing(self, msg_id: str) -> str | None:
        """The Output widget that takes the output of request ``msg_id`` now: of those
        whose ``msg_id`` is it, the one entered last, as in a page, where the hook
        registered last sees a message first."""
        found = self._capturing.get(msg_id) if msg_id else None
        return found[-1] if found else None

    def outputs(self, comm_id: str) -> list[dict[str, Any]]:
        """An Output model's ``outputs``."""
        model = self._models.get(comm_id)
        outputs = model.state.get("outputs") if model is not None else None
        return [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []

    def _index_capture(self, comm_id: str, msg_id: object) -> None:
        """Follow an Output model's ``msg_id`` (None: the model is gone)."""
        for target, models in list(self._capturing.items()):
            if comm_id in models:
                models.remove(comm_id)
                if not models:
                    del self._capturing[target]
        if isinstance(msg_id, str) and msg_id:
            self._capturing.setdefault(msg_id, []).append(comm_id)

    def feed(self, msg: KernelMessage) -> bool:
        """Take one iopub message; True if it changed a widget model."""
        msg_type = msg.get("header", {}).get("msg_type")
        if msg_type not in ("comm_open", "comm_msg", "comm_close"):
            return False
        content: dict[str, Any] = msg.get("content", {})
        comm_id = content.get("comm_id")
        if not isinstance(comm_id, str):
            return False
        if msg_type == "comm_close":
            return self._forget(comm_id)
        data = content.get("data")
        if not isinstance(data, dict):
            return False
        if msg_type == "comm_open":
            if content.get("target_name") != WIDGET_TARGET:
                return False
            self._forget(comm_id)
            model = _Model()
        else:
            found = self._models.get(comm_id)
            if found is None or data.get("method") not in UPDATE_METHODS:
                return False
            model = found
        state = data.get("state")
        if not isinstance(state, dict):
            return False
        paths = data.get("buffer_paths")
        before = model.size if comm_id in self._models else 0
        model.apply(state, paths if isinstance(paths, list) else [], msg.get("buffers") or [])
        if "msg_id" in state and model.state.get("_model_name") == "OutputModel":
            self._index_capture(comm_id, state["msg_id"])
        self._models[comm_id] = model
        self._models.move_to_end(comm_id)
        self._total += model.size - before
        if model.size > self._max_model_bytes:
            self._forget(comm_id)
            self.dropped += 1
        while self._total > self._max_bytes and self._models:
            self._forget(next(iter(self._models)))  # the least recently changed
            self.dropped += 1
        return True

    def _forget(self, comm_id: str) -> bool:
        model = self._models.pop(comm_id, None)
        if model is None:
            return False
        if model.state.get("_model_name") == "OutputModel":
            self._index_capture(comm_id, None)
        self._total -= model.size
        return True

    def saved_state(
        self, views: Iterable[str], saved: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The widget-state document of the models ``views`` show and those they name.

        Args:
            views: Model ids of the widget views in a notebook's outputs.
            saved: The notebook's ``metadata.widgets`` as it is: the entries of models
                this kernel does not know (the notebook was saved by an earlier kernel
                process) are kept from it.
        """
        old: dict[str, Any] = {}
        if isinstance(saved, dict):
            doc = saved.get(STATE_MIMETYPE)
            if isinstance(doc, dict) and isinstance(doc.get("state"), dict):
                old = doc["state"]
        state: dict[str, Any] = {}
        todo = list(views)
        while todo:
            model_id = todo.pop()
            if model_id in state:
                continue
            model = self._models.get(model_id)
            if model is not None:
                entry = model.saved()
            elif isinstance(old.get(model_id), dict):
                entry = old[model_id]
            else:
                continue
            state[model_id] = entry
            todo.extend(_references(entry.get("state")))
        return {"state": dict(sorted(state.items())), "version_major": 2, "version_minor": 0}


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith(MODEL_REF):
            yield value[len(MODEL_REF) :]
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _json_size(value: Any) -> int:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return len(value) + 2 if isinstance(value, str) else 8
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return 0
