"""Tests for ydoc_outputs.outputs.text: the \\r / \\b line model."""

from __future__ import annotations

import random
import re
import time

import pytest

from ydoc_outputs.outputs.text import LineBuffer, collapse_controls

# -- references ------------------------------------------------------------------------

# JupyterLab's OutputAreaModel renders stream text with fixCarriageReturn(fixBackspace(t))
# (@jupyterlab/outputarea, model.ts). Below is a Python rendering of those two functions
# with JavaScript regex semantics: "." and the multiline "^"/"$" also stop at "\r".
_JS_DOT = r"[^\n\r]"
_JS_BOL = r"(?<![^\n\r])"
_JS_EOL = r"(?![^\n\r])"


def jupyterlab_render(text: str) -> str:
    while True:  # fixBackspace
        shorter = re.sub(r"[^\n]\x08", "", text)
        if len(shorter) >= len(text):
            break
        text = shorter
    text = re.sub(r"\r+\n", "\n", text)  # fixCarriageReturn
    while re.search(r"\r[^$]", text):
        base = re.search(_JS_BOL + f"({_JS_DOT}*)\\r+", text)
        insert = re.search(f"\\r+({_JS_DOT}*)" + _JS_EOL, text)
        assert base is not None and insert is not None
        merged = insert.group(1) + base.group(1)[len(insert.group(1)) :]
        text = re.sub(f"\\r+{_JS_DOT}*" + _JS_EOL, "\r", text, count=1)
        text = re.sub(_JS_BOL + f"{_JS_DOT}*\\r", merged.replace("\\", r"\\"), text, count=1)
    return text


def line_model(text: str) -> str:
    """The documented model, one character at a time."""
    done, cursor = "", 0
    line: list[str] = []
    for char in text:
        if char == "\n":
            done += "".join(line) + "\n"
            line, cursor = [], 0
        elif char == "\r":
            cursor = 0
        elif char == "\b":
            if cursor:
                del line[cursor - 1]
                cursor -= 1
        else:
            line[cursor : cursor + 1] = [char]
            cursor += 1
    return done + "".join(line)


def feed_all(chunks: list[str]) -> tuple[str, LineBuffer]:
    line = LineBuffer()
    done = "".join(line.feed(chunk) for chunk in chunks)
    return done, line


def random_text(rng: random.Random, alphabet: str, max_len: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len)))


def random_split(rng: random.Random, text: str) -> list[str]:
    cuts = sorted(rng.sample(range(len(text) + 1), k=min(3, len(text) + 1)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


# -- the rules -------------------------------------------------------------------------


def test_plain_text_completes_lines() -> None:
    line = LineBuffer()
    assert line.feed("ab") == ""
    assert line.feed("c\nde\nf") == "abc\nde\n"
    assert (line.text, line.cursor) == ("f", 1)


def test_carriage_return_overwrites_keeping_the_rest_of_a_longer_line() -> None:
    assert collapse_controls("abc\rX") == "Xbc"
    assert collapse_controls("abcdef\rXY\rZ") == "ZYcdef"
    assert collapse_controls("1/3\r2/3\r3/3\n") == "3/3\n"


def test_carriage_return_newline_acts_like_newline() -> None:
    assert collapse_controls("abc\r\ndef") == "abc\ndef"
    assert collapse_controls("abc\r\r\r\n") == "abc\n"


def test_backspace_deletes_the_previous_character() -> None:
    assert collapse_controls("abc\b") == "ab"
    assert collapse_controls("abc\b\bX") == "aX"
    assert collapse_controls("\bx") == "x"


def test_backspace_never_deletes_a_newline() -> None:
    assert collapse_controls("ab\n\bc") == "ab\nc"
    line = LineBuffer()
    assert line.feed("ab\n") == "ab\n"
    assert line.feed("\b\bc") == ""
    assert line.text == "c"


def test_trailing_carriage_return_is_remembered_for_the_next_chunk() -> None:
    line = LineBuffer()
    assert line.feed("50%\r") == ""
    assert (line.text, line.cursor) == ("50%", 0)
    line.feed("1")
    assert line.text == "10%"
    line.feed("\r100%")
    assert line.text == "100%"


def test_completed_text_and_line_never_hold_controls() -> None:
    rng = random.Random(7)
    for _ in range(500):
        done, line = feed_all(random_split(rng, random_text(rng, "ab\r\n\b", 30)))
        assert not re.search("[\r\b]", done + line.text)
        assert "\n" not in line.text


def test_matches_the_documented_model_whatever_the_chunking() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        text = random_text(rng, "abc\r\n\b", 40)
        done, line = feed_all(random_split(rng, text))
        assert done + line.text == line_model(text) == collapse_controls(text), repr(text)


def test_carriage_returns_match_jupyterlab() -> None:
    rng = random.Random(2)
    for _ in range(3000):
        text = random_text(rng, "abc\n\r\r", 30)
        # JupyterLab leaves a final "\r" in the text; it renders as nothing.
        assert collapse_controls(text) == jupyterlab_render(text).rstrip("\r"), repr(text)


def test_isolated_backspaces_match_jupyterlab() -> None:
    # JupyterLab's regex also cancels a "\b" against a preceding "\b" ("aaa\b\b\b" renders
    # "aa" there), so only texts without consecutive backspaces are compared.
    rng = random.Random(3)
    for _ in range(3000):
        text = random_text(rng, "ab\n\b", 20)
        if "\b\b" not in text:
            expected = jupyterlab_render(text).replace("\b", "")
            assert collapse_controls(text) == expected, repr(text)


def test_line_buffer_validates_its_initial_state() -> None:
    assert LineBuffer("abc", 1).cursor == 1
    with pytest.raises(ValueError):
        LineBuffer("a\rb")
    with pytest.raises(ValueError):
        LineBuffer("abc", 4)


# -- cost ------------------------------------------------------------------------------

STEPS = 100_000


def test_progress_bar_fed_one_chunk_at_a_time_is_fast_and_keeps_one_line() -> None:
    line = LineBuffer()
    start = time.perf_counter()
    done = "".join(line.feed(f"\r{i}/{STEPS}") for i in range(STEPS))
    elapsed = time.perf_counter() - start
    assert (done, line.text) == ("", f"{STEPS - 1}/{STEPS}")
    assert elapsed < 1.0


def test_progress_bar_fed_as_one_chunk_is_fast_and_keeps_one_line() -> None:
    chunk = "".join(f"\r{i}/{STEPS}" for i in range(STEPS))
    line = LineBuffer()
    start = time.perf_counter()
    done = line.feed(chunk)
    elapsed = time.perf_counter() - start
    assert (done, line.text) == ("", f"{STEPS - 1}/{STEPS}")
    assert elapsed < 1.0


@pytest.mark.parametrize("step", ["\rxy", "\rab\b"])
def test_rewriting_a_long_line_costs_linear_time(step: str) -> None:
    # Quadratic work (copying the line at every "\r") would take minutes here.
    line = LineBuffer("z" * 1_000_000)
    start = time.perf_counter()
    line.feed(step * STEPS)
    elapsed = time.perf_counter() - start
    assert line.text.startswith("x" if step == "\rxy" else "a")
    assert elapsed < 1.0
