"""The per-cell output limit of the reducer: head, marker, tail window, and what spills."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from ydoc_outputs.outputs.budget import output_chars
from ydoc_outputs.outputs.ops import DropOutputs, Op, OutputDict, SpillText, TruncateOutputs
from ydoc_outputs.outputs.reducer import OutputLimits, OutputReducer, continuation

from .test_reducer import FakeDocument, display, out, update

MARKER: OutputDict = {"output_type": "display_data", "data": {"text/plain": "[cut]"},
                      "metadata": {"ydoc_outputs": {"truncated": True}}}  # fmt: skip
CELL = "c"


class LimitedDocument(FakeDocument):
    """A fake document that also applies truncation ops, spilling what it drops."""

    def __init__(self) -> None:
        super().__init__()
        self.spilled: dict[str, list[OutputDict]] = {}

    def apply(self, ops: list[Op]) -> None:
        for op in ops:
            outputs = self.outputs.setdefault(op.cell_id, [])
            if isinstance(op, TruncateOutputs):
                assert 0 <= op.index <= len(outputs)
                outputs.insert(op.index, copy.deepcopy(MARKER))
            elif isinstance(op, SpillText):
                spilled = self.spilled.setdefault(op.cell_id, [])
                spilled.append({"output_type": "stream", "name": op.name, "text": op.text})
            elif isinstance(op, DropOutputs):
                at = outputs.index(MARKER) + 1
                assert 0 < op.count <= len(outputs) - at
                self.spilled.setdefault(op.cell_id, []).extend(outputs[at : at + op.count])
                del outputs[at : at + op.count]
            else:
                if not isinstance(op, type(None)) and type(op).__name__ == "ClearOutputs":
                    self.spilled.pop(op.cell_id, None)
                super().apply([op])

    def whole(self, cell_id: str) -> list[OutputDict]:
        """Head + spilled + tail: every output the cell would hold without the limit."""
        outputs = self.outputs.get(cell_id, [])
        if MARKER not in outputs:
            return outputs
        at = outputs.index(MARKER)
        return outputs[:at] + self.spilled.get(cell_id, []) + outputs[at + 1 :]

    def chars(self, cell_id: str) -> int:
        return sum(output_chars(o) for o in self.outputs.get(cell_id, []))


def run(reducer: OutputReducer, doc: FakeDocument, messages: list[Any], batch: int = 1) -> None:
    for i, message in enumerate(messages):
        reducer.feed(CELL, message)
        if (i + 1) % batch == 0:
            doc.apply(reducer.flush())
    doc.apply(reducer.flush())


def rendered(outputs: list[OutputDict]) -> list[OutputDict]:
    """What a reader sees: continuations gone, consecutive streams of one name joined."""
    result: list[OutputDict] = []
    for output in outputs:
        if output == continuation():
            continue
        last = result[-1] if result else None
        if (
            last is not None
            and output["output_type"] == last["output_type"] == "stream"
            and output["name"] == last["name"]
        ):
            last["text"] += output["text"]
        else:
            result.append(dict(output))
    return result


def stream_text(outputs: list[OutputDict]) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream")


def test_a_cell_under_the_limit_is_not_truncated() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=100, cell_output_chars=10_000))
    doc = LimitedDocument()
    run(reducer, doc, [out(f"{i}\n") for i in range(1000)], batch=7)
    assert MARKER not in doc.outputs[CELL]
    assert stream_text(doc.outputs[CELL]) == "".join(f"{i}\n" for i in range(1000))


@pytest.mark.parametrize("batch", [1, 13, 5000])
def test_a_runaway_print_keeps_head_and_tail_and_spills_the_middle(batch: int) -> None:
    limit = 2000
    reducer = OutputReducer(OutputLimits(stream_segment_chars=100, cell_output_chars=limit))
    doc = LimitedDocument()
    lines = [f"line {i}\n" for i in range(20_000)]
    run(reducer, doc, [out(line) for line in lines], batch=batch)
    outputs = doc.outputs[CELL]
    marker = outputs.index(MARKER)
    # Bounded: half the limit on each side of the marker, plus at most one segment.
    assert doc.chars(CELL) <= limit + 100 + len(lines[-1])
    head, tail = stream_text(outputs[:marker]), stream_text(outputs[marker + 1 :])
    assert head.startswith("line 0\nline 1\n") and len(head) <= limit // 2
    assert tail.endswith("line 19999\n") and len(tail) <= limit - len(head) + 100
    # Nothing lost: head + spill + tail is exactly what was printed.
    assert stream_text(doc.whole(CELL)) == "".join(lines)


def test_an_unfinished_line_stays_live_across_truncation() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=50, cell_output_chars=500))
    doc = LimitedDocument()
    messages = [out(f"row {i}\n") for i in range(300)] + [out(f"\r{p}%") for p in range(101)]
    run(reducer, doc, messages, batch=3)
    assert doc.outputs[CELL][-1]["text"].endswith("100%")  # one line, rewritten in place
    assert stream_text(doc.whole(CELL)).endswith("row 298\nrow 299\n100%")


def test_rich_outputs_count_toward_the_limit_and_displays_keep_updating() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=100, cell_output_chars=1000))
    doc = LimitedDocument()
    messages: list[Any] = [display("head", "h" * 10)]
    messages += [display(None, f"{i:0>50}") for i in range(100)]
    messages += [display("tail", "t" * 10), update("head", "H"), update("tail", "T")]
    run(reducer, doc, messages, batch=9)
    outputs = doc.outputs[CELL]
    assert outputs[0]["data"]["text/plain"] == "H"
    assert outputs[-1]["data"]["text/plain"] == "T"
    assert MARKER in outputs and doc.chars(CELL) <= 1000 + 50
    values = [o["data"]["text/plain"] for o in doc.whole(CELL) if o is not MARKER]
    assert values == ["H"] + [f"{i:0>50}" for i in range(100)] + ["T"]


def test_an_update_of_a_spilled_display_changes_nothing() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=100, cell_output_chars=400))
    doc = LimitedDocument()
    messages: list[Any] = [out("x" * 150 + "\n"), display("early", "e" * 100)]
    messages += [out(f"{i:0>99}\n") for i in range(20)] + [update("early", "E")]
    run(reducer, doc, messages)
    assert all(o.get("data", {}).get("text/plain") != "E" for o in doc.outputs[CELL])


def test_clearing_a_truncated_cell_starts_over() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=100, cell_output_chars=1000))
    doc = LimitedDocument()
    run(reducer, doc, [out(f"{i:0>20}\n") for i in range(500)], batch=10)
    assert MARKER in doc.outputs[CELL]
    reducer.start_cell(CELL)
    run(reducer, doc, [out("again\n")])
    assert doc.outputs[CELL] == [{"output_type": "stream", "name": "stdout", "text": "again\n"}]
    assert CELL not in doc.spilled


def test_zero_means_no_limit() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=10, cell_output_chars=0))
    doc = LimitedDocument()
    run(reducer, doc, [out(f"{i}\n") for i in range(5000)], batch=50)
    assert MARKER not in doc.outputs[CELL]
    with pytest.raises(ValueError, match="cell_output_chars"):
        OutputLimits(cell_output_chars=-1)


def test_random_output_matches_an_unlimited_reducer() -> None:
    """Streams of both names, displays, \\r and \\b, in random batches: with the limit,
    head + spill + tail equals what an unlimited reducer leaves in the document."""
    rng = random.Random(20261125)
    for _ in range(30):
        messages: list[Any] = []
        for i in range(rng.randrange(50, 400)):
            kind = rng.random()
            if kind < 0.75:
                pieces = ["\n", "\r", "ab", "\b", f"{i}", "é", "█" * rng.randrange(5)]
                text = "".join(rng.choices(pieces, k=rng.randrange(1, 30)))
                messages.append(out(text, rng.choice(("stdout", "stderr"))))
            else:
                messages.append(display(None, "d" * rng.randrange(1, 80)))
        limits = OutputLimits(stream_segment_chars=rng.randrange(5, 60), cell_output_chars=300)
        batch = rng.randrange(1, 20)
        limited, reference = LimitedDocument(), LimitedDocument()
        run(OutputReducer(limits), limited, messages, batch)
        unlimited = OutputLimits(stream_segment_chars=limits.stream_segment_chars,
                                 cell_output_chars=0)  # fmt: skip
        run(OutputReducer(unlimited), reference, messages, batch)
        assert rendered(limited.whole(CELL)) == rendered(reference.outputs[CELL])
        assert limited.chars(CELL) <= 300 + limits.stream_segment_chars + 80 + 60


def test_a_line_that_never_ends_is_cut_into_segments() -> None:
    limits = OutputLimits(stream_segment_chars=100, cell_output_chars=0, line_chars=100)
    reducer = OutputReducer(limits)
    doc = LimitedDocument()
    run(reducer, doc, [out(".") for _ in range(1000)], batch=7)
    texts = [o["text"] for o in doc.outputs[CELL] if o["output_type"] == "stream"]
    assert "".join(texts) == "." * 1000
    assert max(map(len, texts)) <= 101 + 7


def test_a_line_that_never_ends_stays_under_the_cell_limit() -> None:
    limits = OutputLimits(stream_segment_chars=100, cell_output_chars=1000, line_chars=100)
    reducer = OutputReducer(limits)
    doc = LimitedDocument()
    run(reducer, doc, [out("x" * 37) for _ in range(3000)], batch=5)
    assert doc.chars(CELL) <= 1000 + 100 + 5 * 37
    assert stream_text(doc.whole(CELL)) == "x" * 37 * 3000


def test_a_flood_larger_than_the_tail_goes_to_the_spill_file_directly() -> None:
    reducer = OutputReducer(OutputLimits(stream_segment_chars=100, cell_output_chars=1000))
    doc = LimitedDocument()
    run(reducer, doc, [out(f"{i:09d}\n") for i in range(200)], batch=10)  # truncated now
    flood = "".join(f"{i:09d}\n" for i in range(200, 100_200))  # 1 MB in one message
    reducer.feed(CELL, out(flood))
    ops = reducer.flush()
    # Only what the tail keeps passes through the document: a few segments, not 10,000.
    assert sum(isinstance(op, SpillText) for op in ops) == 1
    assert len(ops) < 20
    doc.apply(ops)
    assert doc.chars(CELL) <= 1000
    assert stream_text(doc.whole(CELL)) == "".join(f"{i:09d}\n" for i in range(100_200))


@pytest.mark.parametrize("seed", range(20))
def test_floods_split_anywhere_keep_the_whole_text(seed: int) -> None:
    """Messages cut mid-line, as ipykernel sends them, through floods and drops: head +
    spill + tail is the printed text, each line once (a flood once spilled the
    unfinished line that followed it, and wrote it again later)."""
    rng = random.Random(seed)
    text = "".join(f"line {i:06d}\n" for i in range(30_000))
    reducer = OutputReducer(OutputLimits(stream_segment_chars=2_000, cell_output_chars=40_000))
    doc = LimitedDocument()
    position = 0
    while position < len(text):
        for _ in range(rng.choice((1, 1, 3))):
            size = rng.choice((rng.randrange(1, 50), rng.randrange(1_000, 15_000),
                               rng.randrange(25_000, 60_000)))  # fmt: skip
            reducer.feed(CELL, out(text[position : position + size]))
            position += size
        doc.apply(reducer.flush())
    assert stream_text(doc.whole(CELL)) == text
