"""``metadata.execution``: what the reducer records of a run, as JupyterLab's recordTiming."""

from __future__ import annotations

from typing import Any

from ydoc_outputs.outputs.ops import KernelMessage, SetExecutionTiming
from ydoc_outputs.outputs.reducer import OutputReducer

BUSY, INPUT, STARTED, REPLY, IDLE = (f"2026-12-04T10:00:0{i}.000000Z" for i in range(5))


def dated(msg_type: str, date: str, **content: Any) -> KernelMessage:
    return {"header": {"msg_type": msg_type, "date": date}, "content": content}


def timings(reducer: OutputReducer) -> list[dict[str, str] | None]:
    return [op.timing for op in reducer.flush() if isinstance(op, SetExecutionTiming)]


def test_a_run_records_the_five_times_of_jupyterlab() -> None:
    reducer = OutputReducer(record_timing=True)
    reducer.start_cell("c")
    assert timings(reducer) == []  # the last run's timing stays until this one's comes
    reducer.feed("c", dated("status", BUSY, execution_state="busy"))
    reducer.feed("c", dated("execute_input", INPUT, code="1", execution_count=1))
    reducer.record("c", "shell.execute_reply.started", STARTED)
    reducer.record("c", "shell.execute_reply", REPLY)
    reducer.record("c", "iopub.status.idle", IDLE)
    *_, last = timings(reducer)
    assert last == {
        "iopub.status.busy": BUSY,
        "iopub.execute_input": INPUT,
        "shell.execute_reply.started": STARTED,
        "shell.execute_reply": REPLY,
        "iopub.status.idle": IDLE,
    }


def test_without_recording_a_run_deletes_the_timing_and_records_nothing() -> None:
    reducer = OutputReducer()
    reducer.start_cell("c")
    reducer.feed("c", dated("status", BUSY, execution_state="busy"))
    reducer.record("c", "shell.execute_reply", REPLY)
    assert timings(reducer) == [None]


def test_only_a_started_run_records_and_a_date_must_be_a_string() -> None:
    reducer = OutputReducer(record_timing=True)
    reducer.feed("c", dated("status", BUSY, execution_state="busy"))  # never started here
    reducer.start_cell("d")
    reducer.record("d", "shell.execute_reply", None)  # type: ignore[arg-type]
    reducer.record("d", "iopub.status.idle", "")
    assert timings(reducer) == []
