"""Pure core of the data path: iopub messages -> output operations for the Y writer.

Nothing here does I/O or imports asyncio, tornado, zmq, pycrdt or Jupyter server code.
"""

from __future__ import annotations

from .mapping import OUTPUT_MSG_TYPES, display_id_of, output_from_message
from .ops import (
    AppendOutput,
    ClearOutputs,
    DropOutputs,
    EditStream,
    ExecutionState,
    KernelMessage,
    MessageHeader,
    Op,
    OutputDict,
    ReplaceOutput,
    SetExecutionCount,
    SetExecutionState,
    SetExecutionTiming,
    SpillText,
    TruncateOutputs,
    TrustCell,
)
from .reducer import OutputLimits, OutputReducer, continuation
from .routing import DEFAULT_MAX_ROUTES, ParentRouter, Route
from .text import LineBuffer, collapse_controls

__all__ = [
    "DEFAULT_MAX_ROUTES",
    "OUTPUT_MSG_TYPES",
    "AppendOutput",
    "ClearOutputs",
    "DropOutputs",
    "EditStream",
    "ExecutionState",
    "KernelMessage",
    "LineBuffer",
    "MessageHeader",
    "Op",
    "OutputDict",
    "OutputLimits",
    "OutputReducer",
    "ParentRouter",
    "ReplaceOutput",
    "Route",
    "SetExecutionCount",
    "SetExecutionState",
    "SetExecutionTiming",
    "SpillText",
    "TruncateOutputs",
    "TrustCell",
    "collapse_controls",
    "continuation",
    "display_id_of",
    "output_from_message",
]
