"""Output operations: what the pure reducer asks the Y writer to do to a notebook.

The reducer (``reducer.py``) turns kernel messages into these values; the writer
(``ydoc_outputs.ydoc``) applies a list of them to a YNotebook in one transaction.
They hold plain Python data only, so this module imports nothing from the I/O layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypedDict

__all__ = [
    "AppendOutput",
    "ClearOutputs",
    "DropOutputs",
    "EditStream",
    "ExecutionState",
    "KernelMessage",
    "MessageHeader",
    "Op",
    "OutputDict",
    "ReplaceOutput",
    "SetExecutionCount",
    "SetExecutionState",
    "SetExecutionTiming",
    "SpillText",
    "TruncateOutputs",
    "TrustCell",
]

ExecutionState: TypeAlias = Literal["running", "idle"]

#: An nbformat 4 output, as a JSON-able dict (``output_type`` plus its fields).
#: A stream output's ``text`` is a ``str`` here; the writer makes it a ``pycrdt.Text``.
OutputDict: TypeAlias = dict[str, Any]


class MessageHeader(TypedDict, total=False):
    msg_id: str
    msg_type: str
    session: str
    username: str
    date: Any
    version: str


class KernelMessage(TypedDict, total=False):
    """A deserialized Jupyter message, as jupyter_client hands it over."""

    header: MessageHeader
    parent_header: MessageHeader
    msg_id: str
    msg_type: str
    metadata: dict[str, Any]
    content: dict[str, Any]
    buffers: list[Any]


@dataclass(frozen=True, slots=True)
class SetExecutionCount:
    cell_id: str
    count: int | None


@dataclass(frozen=True, slots=True)
class SetExecutionState:
    cell_id: str
    state: ExecutionState


@dataclass(frozen=True, slots=True)
class SetExecutionTiming:
    """Set the cell's ``metadata.execution`` to ``timing`` (None: delete it), as
    JupyterLab's ``recordTiming`` does: the ISO dates of ``iopub.status.busy``,
    ``iopub.execute_input``, ``shell.execute_reply.started``, ``shell.execute_reply`` and
    ``iopub.status.idle``."""

    cell_id: str
    timing: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class TrustCell:
    """Mark the cell's outputs trusted (``metadata.trusted``), as JupyterLab does when it
    runs a cell: what the notebook's own code produces is trusted. jupyter_server signs
    the notebook on save when every code cell is, and marks its cells on load."""

    cell_id: str


@dataclass(frozen=True, slots=True)
class ClearOutputs:
    cell_id: str


@dataclass(frozen=True, slots=True)
class AppendOutput:
    """Append one output at the end of the cell's outputs."""

    cell_id: str
    output: OutputDict


@dataclass(frozen=True, slots=True)
class EditStream:
    """Edit the tail of the stream output at ``index``: delete the last ``delete``
    characters of its text, then append ``insert``.

    ``delete`` is measured in UTF-8 bytes, the offset unit of pycrdt's ``Text`` (for
    ASCII text, bytes and characters agree), so the writer uses it as is. It always
    spans whole characters.

    The writer checks that the output at ``index`` is the cell's last output and a
    stream named ``name`` holding at least ``delete`` bytes; otherwise it
    appends a new stream output holding ``insert``.
    """

    cell_id: str
    index: int
    name: str
    delete: int
    insert: str


@dataclass(frozen=True, slots=True)
class ReplaceOutput:
    """Replace the output at ``index`` (an update_display_data target)."""

    cell_id: str
    index: int
    output: OutputDict


@dataclass(frozen=True, slots=True)
class TruncateOutputs:
    """Insert the truncation marker at ``index``: the cell's output grew past its limit.

    The outputs from ``index`` on move after the marker (the writer deletes and appends
    them again, since the frontend renders every inserted output at the end).
    """

    cell_id: str
    index: int


@dataclass(frozen=True, slots=True)
class DropOutputs:
    """Move the first ``count`` outputs after the truncation marker to the spill file.

    The writer deletes every output after the marker and appends the kept ones again:
    JupyterLab merges consecutive stream outputs in its model, so a deletion in the
    middle of a run of segments would remove the wrong one there.
    """

    cell_id: str
    count: int


@dataclass(frozen=True, slots=True)
class SpillText:
    """Append ``text`` to the cell's spill file: stream text that never enters the
    document (a message larger than the tail it would have to pass through)."""

    cell_id: str
    name: str
    text: str


Op: TypeAlias = (
    SetExecutionCount
    | SetExecutionState
    | SetExecutionTiming
    | TrustCell
    | ClearOutputs
    | AppendOutput
    | EditStream
    | ReplaceOutput
    | TruncateOutputs
    | DropOutputs
    | SpillText
)
