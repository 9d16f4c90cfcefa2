"""Map one iopub message's content to an nbformat 4.5 output dict.

The first step of the pure data path: the reducer calls this for every output message.
"""

from __future__ import annotations

from typing import Any

from .ops import OutputDict

__all__ = ["OUTPUT_MSG_TYPES", "display_id_of", "output_from_message"]

#: Message types that become an output of their own.
OUTPUT_MSG_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})


def output_from_message(msg_type: str, content: dict[str, Any]) -> OutputDict | None:
    """Build the nbformat output for an iopub message.

    The result holds exactly the fields nbformat 4.5 allows for its ``output_type``;
    ``transient`` (display ids) never goes into the document.

    Args:
        msg_type: The iopub message type, e.g. ``"stream"``.
        content: The message content.

    Returns:
        A new output dict, or None if the message type makes no output or the content
        is malformed (a missing or wrongly typed field).
    """
    if not isinstance(content, dict):
        return None
    if msg_type == "stream":
        name, text = content.get("name"), content.get("text")
        if not isinstance(name, str) or not isinstance(text, str):
            return None
        return {"output_type": "stream", "name": name, "text": text}
    if msg_type in ("display_data", "execute_result"):
        bundle = _mime_bundle(content)
        if bundle is None:
            return None
        if msg_type == "display_data":
            return {"output_type": "display_data", **bundle}
        count = content.get("execution_count")
        if not _is_count(count):
            return None
        return {"output_type": "execute_result", **bundle, "execution_count": count}
    if msg_type == "error":
        return _error(content)
    return None


def display_id_of(content: dict[str, Any]) -> str | None:
    """Return ``content["transient"]["display_id"]``, or None if absent or not a string.

    Args:
        content: The content of a display_data, execute_result or update_display_data
            message.
    """
    transient = content.get("transient") if isinstance(content, dict) else None
    if not isinstance(transient, dict):
        return None
    display_id = transient.get("display_id")
    return display_id if isinstance(display_id, str) and display_id else None


def _mime_bundle(content: dict[str, Any]) -> dict[str, Any] | None:
    """Return ``{"data", "metadata"}`` copied from ``content``, or None if malformed."""
    data = content.get("data")
    metadata = content.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(data, dict) or not isinstance(metadata, dict):
        return None
    return {"data": dict(data), "metadata": dict(metadata)}


def _is_count(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _error(content: dict[str, Any]) -> OutputDict | None:
    ename, evalue = content.get("ename"), content.get("evalue")
    traceback = content.get("traceback", [])
    if not isinstance(ename, str) or not isinstance(evalue, str):
        return None
    if not isinstance(traceback, list) or not all(isinstance(t, str) for t in traceback):
        return None
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": list(traceback)}
