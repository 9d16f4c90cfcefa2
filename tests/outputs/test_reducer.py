"""Tests for ydoc_outputs.outputs.reducer: iopub messages -> batches of output operations."""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import pytest

from ydoc_outputs.outputs.ops import (
    AppendOutput,
    ClearOutputs,
    EditStream,
    KernelMessage,
    Op,
    OutputDict,
    ReplaceOutput,
    SetExecutionCount,
    SetExecutionState,
    SetExecutionTiming,
    TrustCell,
)
from ydoc_outputs.outputs.reducer import OutputLimits, OutputReducer, continuation
from ydoc_outputs.outputs.text import collapse_controls

# -- helpers ---------------------------------------------------------------------------


def msg(msg_type: str, **content: Any) -> KernelMessage:
    return {"header": {"msg_type": msg_type}, "content": content}


def out(text: str, name: str = "stdout") -> KernelMessage:
    return msg("stream", name=name, text=text)


def display(did: str | None = None, value: str = "v", *, count: int | None = None) -> KernelMessage:
    content: dict[str, Any] = {"data": {"text/plain": value}, "metadata": {}}
    if did is not None:
        content["transient"] = {"display_id": did}
    if count is None:
        return msg("display_data", **content)
    return msg("execute_result", execution_count=count, **content)


def update(did: str, value: str) -> KernelMessage:
    return msg(
        "update_display_data",
        data={"text/plain": value},
        metadata={},
        transient={"display_id": did},
    )


def stream(text: str, name: str = "stdout") -> OutputDict:
    return {"output_type": "stream", "name": name, "text": text}


def data(value: str, count: int | None = None) -> OutputDict:
    output: OutputDict = {
        "output_type": "display_data" if count is None else "execute_result",
        "data": {"text/plain": value},
        "metadata": {},
    }
    if count is not None:
        output["execution_count"] = count
    return output


def output_ops(ops: list[Op]) -> list[Op]:
    return [op for op in ops if not isinstance(op, SetExecutionCount | SetExecutionState)]


class FakeDocument:
    """Applies ops the way the writer does, asserting the frontend's rendering rules."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[OutputDict]] = {}
        self.state: dict[str, str] = {}
        self.count: dict[str, int | None] = {}

    def apply(self, ops: list[Op]) -> None:
        for op in ops:
            outputs = self.outputs.setdefault(op.cell_id, [])
            if isinstance(op, ClearOutputs):
                outputs.clear()
            elif isinstance(op, AppendOutput):
                outputs.append(copy.deepcopy(op.output))
            elif isinstance(op, EditStream):
                # The frontend applies stream edits to the last output only.
                assert op.index == len(outputs) - 1, (op, outputs)
                last = outputs[-1]
                assert last["output_type"] == "stream" and last["name"] == op.name
                # ``delete`` counts UTF-8 bytes (pycrdt's unit) and spans whole characters.
                encoded = last["text"].encode()
                assert 0 <= op.delete <= len(encoded)
                kept = encoded[: len(encoded) - op.delete].decode()  # fails mid-character
                last["text"] = kept + op.insert
            elif isinstance(op, ReplaceOutput):
                assert 0 <= op.index < len(outputs)
                outputs[op.index] = copy.deepcopy(op.output)
            elif isinstance(op, SetExecutionState):
                self.state[op.cell_id] = op.state
            elif isinstance(op, SetExecutionCount):
                self.count[op.cell_id] = op.count


# -- start, execute_input, status ------------------------------------------------------


def test_start_cell_clears_then_marks_running() -> None:
    reducer = OutputReducer()
    reducer.start_cell("c")
    assert reducer.flush() == [
        ClearOutputs("c"),
        TrustCell("c"),  # what the notebook's own code outputs is trusted
        SetExecutionCount("c", None),
        SetExecutionState("c", "running"),
        SetExecutionTiming("c", None),  # not recording: as JupyterLab, drop the old one
    ]
    assert reducer.flush() == []


def test_a_cell_started_when_queued_is_started_again_only_if_touched_since() -> None:
    # Queued (its POST), then sent to the kernel: nothing happened to it in between.
    reducer = OutputReducer()
    reducer.start_cell("c")
    reducer.flush()
    reducer.start_cell("c", again=True)
    assert reducer.flush() == []
    # Its previous run's output came in between (the same cell queued twice): cleared.
    reducer.feed("c", out("late"))
    reducer.start_cell("c", again=True)
    ops = reducer.flush()
    assert ClearOutputs("c") in ops and SetExecutionState("c", "running") in ops
    # A cell never started when queued is started in full.
    reducer.start_cell("d", again=True)
    assert ClearOutputs("d") in reducer.flush()


def test_execution_count_is_written_with_idle() -> None:
    # JupyterLab takes a new count as the end of a run and would hide the [*].
    reducer = OutputReducer()
    reducer.feed("c", msg("execute_input", code="1", execution_count=3))
    assert reducer.flush() == []
    reducer.feed("c", out("x"))
    reducer.feed("c", msg("status", execution_state="idle"))
    assert reducer.flush() == [
        AppendOutput("c", stream("x")),
        SetExecutionCount("c", 3),
        SetExecutionState("c", "idle"),
    ]
    reducer.feed("c", msg("status", execution_state="idle"))
    assert reducer.flush() == [SetExecutionState("c", "idle")]


def test_clearing_outputs_keeps_the_pending_execution_count() -> None:
    reducer = OutputReducer()
    reducer.feed("c", msg("execute_input", code="1", execution_count=4))
    reducer.feed("c", msg("clear_output", wait=False))
    reducer.feed("c", msg("clear_output", wait=True))
    reducer.feed("c", out("x"))
    reducer.flush()
    reducer.feed("c", msg("status", execution_state="idle"))
    assert reducer.flush() == [SetExecutionCount("c", 4), SetExecutionState("c", "idle")]


def test_status_idle_marks_the_cell_idle_and_other_statuses_are_ignored() -> None:
    reducer = OutputReducer()
    reducer.feed("c", msg("status", execution_state="busy"))
    reducer.feed("c", msg("status", execution_state="idle"))
    assert reducer.flush() == [SetExecutionState("c", "idle")]


def test_message_type_may_come_from_the_top_level() -> None:
    reducer = OutputReducer()
    reducer.feed("c", {"msg_type": "stream", "content": {"name": "stdout", "text": "x"}})
    assert reducer.flush() == [AppendOutput("c", stream("x"))]


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"header": {"msg_type": "stream"}},
        {"header": {}, "content": {"name": "stdout", "text": "x"}},
        {"header": {"msg_type": "stream"}, "content": None},
        msg("stream", name="stdout"),
        msg("stream", name="stdout", text=""),
        msg("display_data", data=None),
        msg("execute_input", execution_count="3"),
        msg("update_display_data", data={}, metadata={}),
        msg("update_display_data", transient={"display_id": "d"}),
        msg("comm_msg", data={}),
        msg("no_such_type"),
    ],
)
def test_odd_messages_are_ignored(message: Any) -> None:
    reducer = OutputReducer()
    reducer.feed("c", message)
    assert reducer.flush() == []
    assert reducer.output_count("c") == 0


# -- stream ----------------------------------------------------------------------------


def test_stream_text_in_one_batch_becomes_one_append() -> None:
    reducer = OutputReducer()
    for i in range(50):
        reducer.feed("c", out(f"{i}\n"))
    assert reducer.flush() == [AppendOutput("c", stream("".join(f"{i}\n" for i in range(50))))]
    assert reducer.output_count("c") == 1


def test_stream_text_coalesces_into_the_last_stream_output_across_batches() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a\n"))
    reducer.flush()
    for text in ["b", "c\n", "d"]:
        reducer.feed("c", out(text))
    assert reducer.flush() == [EditStream("c", 0, "stdout", 0, "bc\nd")]


def test_appending_to_a_line_deletes_nothing() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("abc"))
    reducer.flush()
    reducer.feed("c", out("def\nxyz"))
    assert reducer.flush() == [EditStream("c", 0, "stdout", 0, "def\nxyz")]


def test_stream_of_another_name_starts_a_new_output() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.feed("c", out("b", "stderr"))
    reducer.feed("c", out("c", "stderr"))
    assert reducer.flush() == [
        AppendOutput("c", stream("a")),
        AppendOutput("c", stream("bc", "stderr")),
    ]


def test_stream_after_a_display_starts_a_new_output() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.flush()
    reducer.feed("c", out("b"))
    reducer.feed("c", display())
    reducer.feed("c", out("c"))
    assert reducer.flush() == [
        EditStream("c", 0, "stdout", 0, "b"),
        AppendOutput("c", data("v")),
        AppendOutput("c", stream("c")),
    ]


def test_stream_edit_comes_before_later_ops_of_its_cell() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.flush()
    reducer.feed("c", out("b"))
    reducer.feed("c", msg("status", execution_state="idle"))
    reducer.feed("c", out("c"))
    assert reducer.flush() == [
        EditStream("c", 0, "stdout", 0, "bc"),
        SetExecutionState("c", "idle"),
    ]


def test_carriage_return_rewrites_only_the_changed_tail() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("done\nstep 10%"))
    reducer.flush()
    reducer.feed("c", out("\rstep 20%"))
    assert reducer.flush() == [EditStream("c", 0, "stdout", 3, "20%")]


def test_carriage_return_keeps_the_rest_of_a_longer_line() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("abc"))
    reducer.flush()
    reducer.feed("c", out("\rX"))
    assert reducer.flush() == [EditStream("c", 0, "stdout", 3, "Xbc")]


def test_backspace_deletes_the_previous_character() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("abc"))
    reducer.flush()
    reducer.feed("c", out("\b\bX"))
    assert reducer.flush() == [EditStream("c", 0, "stdout", 2, "X")]


def test_carriage_return_newline_acts_like_newline() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a\r\nb\r\r\n"))
    assert reducer.flush() == [AppendOutput("c", stream("a\nb\n"))]


def test_trailing_carriage_return_lets_the_next_chunk_overwrite() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("50%\r"))
    assert reducer.flush() == [AppendOutput("c", stream("50%"))]
    reducer.feed("c", out("60%"))
    assert reducer.flush() == [EditStream("c", 0, "stdout", 3, "60%")]


def test_edit_deletes_count_utf8_bytes() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("██░░ 50%"))
    reducer.flush()
    reducer.feed("c", out("\r███░ 75%"))
    # "░░ 50%" is replaced: 6 characters, but 3 + 3 + 4 = 10 bytes.
    assert reducer.flush() == [EditStream("c", 0, "stdout", 10, "█░ 75%")]


def test_an_edit_that_changes_nothing_is_skipped() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("abc\r"))
    reducer.flush()
    reducer.feed("c", out("ab"))
    assert reducer.flush() == []


def test_progress_bar_in_one_batch_is_fast_and_flushes_one_line() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("start\n"))
    reducer.flush()
    messages = [out(f"\r{i}/100000") for i in range(100_000)]
    begin = time.perf_counter()
    for message in messages:
        reducer.feed("c", message)
    ops = reducer.flush()
    elapsed = time.perf_counter() - begin
    assert ops == [EditStream("c", 0, "stdout", 0, "99999/100000")]
    assert elapsed < 1.5


# -- segmenting ------------------------------------------------------------------------


def test_stream_continues_in_a_new_output_once_a_segment_is_full() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=10))
    reducer.feed("c", out("12345\n"))
    reducer.flush()
    reducer.feed("c", out("6789\nab"))  # reaches 10 at a line end: "ab" goes on
    assert reducer.flush() == [
        EditStream("c", 0, "stdout", 0, "6789\n"),
        AppendOutput("c", continuation()),  # JupyterLab must not merge the two segments
        AppendOutput("c", stream("ab")),
    ]
    assert reducer.output_count("c") == 3


def test_a_full_segment_ending_a_batch_is_continued_by_the_next_text() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=4))
    reducer.feed("c", out("abcd\n"))
    reducer.flush()
    reducer.feed("c", out("\re"))
    assert reducer.flush() == [AppendOutput("c", continuation()), AppendOutput("c", stream("e"))]


def test_segments_never_split_a_line() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=4))
    reducer.feed("c", out("a\n" + "x" * 20))
    reducer.feed("c", out("y\nb\nc"))
    assert reducer.flush() == [
        AppendOutput("c", stream("a\n" + "x" * 20 + "y\n")),
        AppendOutput("c", continuation()),
        AppendOutput("c", stream("b\nc")),
    ]


def test_a_large_chunk_is_cut_into_bounded_segments() -> None:
    text = "".join(f"line {i}\n" for i in range(100_000))
    reducer = OutputReducer()
    reducer.feed("c", out(text))
    ops = reducer.flush()
    texts = [op.output["text"] for op in ops if op.output["output_type"] == "stream"]
    assert ops[1::2] == [AppendOutput("c", continuation())] * (len(ops) // 2)
    assert len(texts) == (len(ops) + 1) // 2 > 1
    assert "".join(texts) == text
    assert all(t.endswith("\n") and len(t) < 65536 + 20 for t in texts)


# -- display_data, execute_result, update_display_data ---------------------------------


def test_display_data_and_execute_result_append_outputs() -> None:
    reducer = OutputReducer()
    reducer.feed("c", display("d1", "a"))
    reducer.feed("c", display(value="b", count=4))
    assert reducer.flush() == [AppendOutput("c", data("a")), AppendOutput("c", data("b", 4))]
    assert reducer.output_count("c") == 2


def test_update_display_data_replaces_every_output_with_that_id() -> None:
    reducer = OutputReducer()
    reducer.feed("c", display("d1", "a"))
    reducer.feed("c", out("text"))
    reducer.feed("c", display("d1", "b"))
    reducer.flush()
    reducer.feed("c", update("d1", "new"))
    assert reducer.flush() == [
        ReplaceOutput("c", 0, data("new")),
        ReplaceOutput("c", 2, data("new")),
    ]
    assert reducer.output_count("c") == 3


def test_update_display_data_reaches_other_cells_and_appends_nothing() -> None:
    reducer = OutputReducer()
    reducer.feed("c1", display("d1", "a"))
    reducer.feed("c2", display("d1", "b", count=7))
    reducer.flush()
    reducer.feed("c3", update("d1", "new"))
    assert reducer.flush() == [
        ReplaceOutput("c1", 0, data("new")),
        ReplaceOutput("c2", 0, data("new", 7)),
    ]
    assert reducer.output_count("c3") == 0


def test_update_of_an_unknown_display_id_does_nothing() -> None:
    reducer = OutputReducer()
    reducer.feed("c", display("d1"))
    reducer.flush()
    reducer.feed("c", update("d2", "new"))
    assert reducer.flush() == []


def test_clearing_a_cell_forgets_its_display_ids() -> None:
    reducer = OutputReducer()
    reducer.feed("c1", display("d1"))
    reducer.feed("c2", display("d1"))
    reducer.feed("c1", msg("clear_output", wait=False))
    reducer.flush()
    reducer.feed("c1", update("d1", "new"))
    assert reducer.flush() == [ReplaceOutput("c2", 0, data("new"))]


# -- clear_output ----------------------------------------------------------------------


def test_clear_output_now() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.flush()
    reducer.feed("c", msg("clear_output", wait=False))
    reducer.feed("c", out("b"))
    assert reducer.flush() == [ClearOutputs("c"), AppendOutput("c", stream("b"))]
    assert reducer.output_count("c") == 1


def test_clear_output_wait_clears_just_before_the_next_output() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.flush()
    reducer.feed("c", msg("clear_output", wait=True))
    reducer.feed("c", msg("execute_input", execution_count=1))
    reducer.feed("c", display())
    assert reducer.flush() == [
        ClearOutputs("c"),
        AppendOutput("c", data("v")),
    ]


def test_clear_output_wait_across_two_batches() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.flush()
    reducer.feed("c", msg("clear_output", wait=True))
    assert reducer.flush() == []
    reducer.feed("c", msg("error", ename="E", evalue="v", traceback=["tb"]))
    error = {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["tb"]}
    assert reducer.flush() == [ClearOutputs("c"), AppendOutput("c", error)]


def test_repeated_clear_output_wait_keeps_one_pending_clear() -> None:
    reducer = OutputReducer()
    reducer.feed("c", msg("clear_output", wait=True))
    reducer.feed("c", msg("clear_output", wait=True))
    reducer.flush()
    reducer.feed("c", out("x"))
    assert reducer.flush() == [ClearOutputs("c"), AppendOutput("c", stream("x"))]


def test_idle_drops_a_pending_clear() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    reducer.feed("c", msg("clear_output", wait=True))
    reducer.feed("c", msg("status", execution_state="idle"))
    reducer.feed("c", out("b"))
    assert reducer.flush() == [AppendOutput("c", stream("ab")), SetExecutionState("c", "idle")]


def test_clear_in_a_loop_flushes_one_clear_and_the_last_output() -> None:
    reducer = OutputReducer()
    reducer.start_cell("c")
    for i in range(100):
        reducer.feed("c", msg("clear_output", wait=True))
        reducer.feed("c", out(f"step {i}\n"))
    assert reducer.flush() == [
        TrustCell("c"),
        SetExecutionCount("c", None),
        SetExecutionState("c", "running"),
        SetExecutionTiming("c", None),
        ClearOutputs("c"),
        AppendOutput("c", stream("step 99\n")),
    ]


def test_a_clear_drops_earlier_output_ops_of_its_cell_only() -> None:
    reducer = OutputReducer()
    reducer.feed("c", display("d1"))
    reducer.feed("other", display("d1"))
    reducer.flush()
    reducer.feed("c", update("d1", "new"))
    reducer.feed("c", msg("status", execution_state="busy"))
    reducer.start_cell("c")
    reducer.feed("c", out("x"))
    reducer.feed("c", msg("clear_output", wait=False))
    assert reducer.flush() == [
        ReplaceOutput("other", 0, data("new")),
        TrustCell("c"),
        SetExecutionCount("c", None),
        SetExecutionState("c", "running"),
        SetExecutionTiming("c", None),
        ClearOutputs("c"),
    ]


# -- error, forget ---------------------------------------------------------------------


def test_error_appends_an_error_output() -> None:
    reducer = OutputReducer()
    reducer.feed("c", out("a"))
    fields = {"ename": "KeyError", "evalue": "'k'", "traceback": ["t1", "t2"]}
    reducer.feed("c", msg("error", **fields))
    error = {"output_type": "error", **fields}
    assert reducer.flush() == [AppendOutput("c", stream("a")), AppendOutput("c", error)]


def test_forget_cell() -> None:
    reducer = OutputReducer()
    reducer.feed("c", display("d1"))
    reducer.flush()
    reducer.forget_cell("c")
    reducer.forget_cell("never-seen")
    reducer.feed("x", update("d1", "new"))
    assert reducer.flush() == []
    assert reducer.output_count("c") == 0


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OutputLimits(stream_segment_chars=0)


# -- against a straightforward model of the semantics ----------------------------------


class ReferenceNotebook:
    """The DESIGN.md semantics, message by message, with no batching and no segments."""

    def __init__(self) -> None:
        self.outputs: dict[str, list[dict[str, Any]]] = {}
        self.pending_clear: set[str] = set()

    def cell(self, cell_id: str) -> list[dict[str, Any]]:
        return self.outputs.setdefault(cell_id, [])

    def before_output(self, cell_id: str) -> list[dict[str, Any]]:
        if cell_id in self.pending_clear:
            self.pending_clear.discard(cell_id)
            self.cell(cell_id).clear()
        return self.cell(cell_id)

    def start(self, cell_id: str) -> None:
        self.cell(cell_id).clear()
        self.pending_clear.discard(cell_id)

    def feed(self, cell_id: str, message: KernelMessage) -> None:
        msg_type, content = message["header"]["msg_type"], message["content"]
        if msg_type == "stream":
            outputs = self.before_output(cell_id)
            last = outputs[-1] if outputs else None
            if last and last["output_type"] == "stream" and last["name"] == content["name"]:
                last["raw"] += content["text"]
            else:
                outputs.append({"output_type": "stream", "name": content["name"]})
                outputs[-1]["raw"] = content["text"]
        elif msg_type in ("display_data", "execute_result"):
            output = data(content["data"]["text/plain"], content.get("execution_count"))
            output["did"] = content.get("transient", {}).get("display_id")
            self.before_output(cell_id).append(output)
        elif msg_type == "update_display_data":
            for outputs in self.outputs.values():
                for output in outputs:
                    if output.get("did") == content["transient"]["display_id"]:
                        output["data"] = dict(content["data"])
        elif msg_type == "clear_output":
            if content["wait"]:
                self.pending_clear.add(cell_id)
            else:
                self.start(cell_id)
        elif msg_type == "status":
            self.pending_clear.discard(cell_id)

    def rendered(self, cell_id: str) -> list[OutputDict]:
        result = []
        for output in self.outputs.get(cell_id, []):
            shown = {k: v for k, v in output.items() if k not in ("did", "raw")}
            if "raw" in output:
                shown["text"] = collapse_controls(output["raw"])
            result.append(shown)
        return result


def merge_segments(outputs: list[OutputDict], cap: int) -> list[OutputDict]:
    """Join consecutive stream outputs of one name, checking the segment bounds."""
    merged: list[OutputDict] = []
    continued = False
    for output in outputs:
        if output == continuation():
            # Only ever between two segments of one stream, which it keeps apart.
            continued = True
            continue
        previous = merged[-1] if merged else None
        assert not continued or (
            previous is not None
            and output["output_type"] == previous["output_type"] == "stream"
            and output["name"] == previous["name"]
        ), (previous, output)
        if output["output_type"] == "stream" and previous is not None and not continued:
            # JupyterLab would merge these two and corrupt the document.
            assert previous["output_type"] != "stream" or previous["name"] != output["name"]
        continued = False
        if output["output_type"] == "stream":
            # Completed lines before the last one stay under the cap.
            completed = output["text"][: output["text"].rfind("\n") + 1]
            before_last_line = completed[: completed.rfind("\n", 0, len(completed) - 1) + 1]
            assert len(before_last_line) < cap
        if (
            previous is not None
            and output["output_type"] == previous["output_type"] == "stream"
            and output["name"] == previous["name"]
        ):
            assert previous["text"].endswith("\n")  # a line is never split
            previous["text"] += output["text"]
        else:
            merged.append(dict(output))
    return merged


def random_session(rng: random.Random, cap: int) -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=cap))
    document = FakeDocument()
    reference = ReferenceNotebook()
    cells = ["a", "b"]
    for _ in range(300):
        cell = rng.choice(cells)
        roll = rng.random()
        message: KernelMessage | None = None
        if roll < 0.03:
            reducer.start_cell(cell)
            reference.start(cell)
        elif roll < 0.55:
            text = "".join(rng.choice("xyé█\r\n\b") for _ in range(rng.randint(1, 9)))
            message = out(text, rng.choice(["stdout", "stdout", "stderr"]))
        elif roll < 0.62:
            count = rng.choice([None, 3])
            message = display(rng.choice([None, "d1", "d2"]), str(rng.random()), count=count)
        elif roll < 0.70:
            message = update(rng.choice(["d1", "d2", "d3"]), str(rng.random()))
        elif roll < 0.80:
            message = msg("clear_output", wait=rng.random() < 0.7)
        elif roll < 0.83:
            message = msg("status", execution_state="idle")
        if message is not None:
            reducer.feed(cell, message)
            reference.feed(cell, message)
        if rng.random() < 0.2:
            document.apply(reducer.flush())
    document.apply(reducer.flush())
    for cell in cells:
        got = merge_segments(document.outputs.get(cell, []), cap)
        assert got == reference.rendered(cell)
        assert reducer.output_count(cell) == len(document.outputs.get(cell, []))


@pytest.mark.parametrize("cap", [3, 12, 65536])
def test_random_sessions_match_the_reference_semantics(cap: int) -> None:
    rng = random.Random(cap)
    for _ in range(40):
        random_session(rng, cap)
