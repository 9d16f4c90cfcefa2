"""Tests for ydoc_outputs.outputs.stream: one minimal operation per stream output per batch."""

from __future__ import annotations

import random

from ydoc_outputs.outputs.ops import AppendOutput, EditStream
from ydoc_outputs.outputs.stream import StreamOutput, common_prefix_length, utf8_length


def feed(stream: StreamOutput, text: str) -> None:
    done = stream.line.feed(text)
    if done:
        stream.add_completed(done)


def test_first_operation_appends_the_output() -> None:
    stream = StreamOutput(2, "stderr")
    feed(stream, "a\nb")
    assert stream.take_op("c") == AppendOutput(
        "c", {"output_type": "stream", "name": "stderr", "text": "a\nb"}
    )


def test_later_operations_edit_the_tail_minimally() -> None:
    stream = StreamOutput(0, "stdout")
    feed(stream, "done\nabc")
    stream.take_op("c")
    feed(stream, "def\n")
    assert stream.take_op("c") == EditStream("c", 0, "stdout", 0, "def\n")
    feed(stream, "12345")
    stream.take_op("c")
    feed(stream, "\r12399")
    assert stream.take_op("c") == EditStream("c", 0, "stdout", 2, "99")
    assert stream.take_op("c") is None  # nothing changed


def test_edit_deletes_are_counted_in_utf8_bytes() -> None:
    stream = StreamOutput(0, "stdout")
    feed(stream, "é█😀")
    stream.take_op("c")
    feed(stream, "\r")
    feed(stream, "x")
    assert stream.take_op("c") == EditStream("c", 0, "stdout", 2 + 3 + 4, "x█😀")


def test_utf8_length() -> None:
    assert utf8_length("") == 0
    assert utf8_length("abc") == 3
    assert utf8_length("é█😀") == 9
    assert utf8_length("\ud800") == 3  # a lone surrogate does not raise


def test_completed_length_and_fullness() -> None:
    stream = StreamOutput(0, "stdout")
    feed(stream, "abc\nde")
    assert stream.completed_len == 4
    assert not stream.is_full(4)  # the line "de" is unfinished
    feed(stream, "\n")
    assert stream.is_full(4) and stream.is_full(7) and not stream.is_full(8)
    stream.take_op("c")
    assert stream.completed_len == 7


def test_common_prefix_length() -> None:
    assert common_prefix_length("", "abc") == 0
    assert common_prefix_length("abc", "abd") == 2
    assert common_prefix_length("abc", "abcdef") == 3
    assert common_prefix_length("abcdef", "abc") == 3
    rng = random.Random(5)
    for _ in range(2000):
        a = "".join(rng.choice("ab") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("ab") for _ in range(rng.randint(0, 12)))
        expected = next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        assert common_prefix_length(a, b, block=3) == expected


def test_common_prefix_length_of_long_strings() -> None:
    a = "x" * 100_000 + "a"
    assert common_prefix_length(a, "x" * 100_000 + "b") == 100_000
