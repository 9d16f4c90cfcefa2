"""Output widgets: output captured by ``with out:`` goes into the widget, not the cell.

ipywidgets' ``Output`` sets its model's ``msg_id`` to the running request's msg_id on
``__enter__`` and back to ``""`` on ``__exit__``; the frontend that sent that request
hooks its messages and moves their outputs into the model's ``outputs``. A page never
sent a request the server runs, so the server does it: while an Output model's
``msg_id`` is a run's msg_id, that run's output messages are applied here, as
JupyterLab's output area applies them (a stream continues the last output of the same
stream, ``clear_output(wait=True)`` clears at the next output), and the model's new
``outputs`` reach the pages and the kernel (kernels/runner.py). ``update_display_data``
is not captured: it goes where it goes without a widget.

Pure: no I/O, tested alone.
"""

from __future__ import annotations

from typing import Any

from .ops import KernelMessage

__all__ = ["CAPTURED_TYPES", "MAX_CAPTURED_OUTPUTS", "apply_captured"]

#: Messages whose output a capturing Output widget takes.
CAPTURED_TYPES = frozenset({"stream", "display_data", "execute_result", "error", "clear_output"})
#: Outputs one widget keeps; the oldest go first (a loop displaying in a `with out:`).
MAX_CAPTURED_OUTPUTS = 200
#: Characters of one stream output a widget keeps, the oldest text going first: each
#: printed line copies the text it continues, so this bounds the work per line.
MAX_STREAM_CHARS = 50_000


def apply_captured(
    outputs: list[dict[str, Any]], clear_pending: bool, msg: KernelMessage
) -> tuple[list[dict[str, Any]], bool]:
    """``outputs`` after one captured message, and whether a clear now waits."""
    msg_type = msg.get("header", {}).get("msg_type", "")
    content = msg.get("content") or {}
    if msg_type == "clear_output":
        if content.get("wait"):
            return outputs, True
        return [], False
    output = _output(msg_type, content)
    if output is None:
        return outputs, clear_pending
    current = [] if clear_pending else list(outputs)
    last = current[-1] if current else None
    if (
        output["output_type"] == "stream"
        and last is not None
        and last.get("output_type") == "stream"
        and last.get("name") == output["name"]
    ):
        text = str(last.get("text", "")) + output["text"]
        current[-1] = {**last, "text": text[-MAX_STREAM_CHARS:]}
    else:
        if output["output_type"] == "stream":
            output["text"] = output["text"][-MAX_STREAM_CHARS:]
        current.append(output)
    return current[-MAX_CAPTURED_OUTPUTS:], False


def _output(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    if msg_type == "stream":
        text = content.get("text")
        if not isinstance(text, str):
            return None
        return {"output_type": "stream", "name": content.get("name") or "stdout", "text": text}
    if msg_type == "display_data":
        return {
            "output_type": "display_data",
            "data": content.get("data") or {},
            "metadata": content.get("metadata") or {},
        }
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "data": content.get("data") or {},
            "metadata": content.get("metadata") or {},
            "execution_count": content.get("execution_count"),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": str(content.get("ename", "")),
            "evalue": str(content.get("evalue", "")),
            "traceback": list(content.get("traceback") or []),
        }
    return None
