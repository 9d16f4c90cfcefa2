"""The CLI's notebook mirror prints each line once, whatever the server's writer does.

The real reducer and writer change a server's YNotebook; its updates reach a client's
copy as over the websocket, one batch at a time; the mirror on the client prints into a
buffer. Checked: segments, ``\\r`` progress bars, display updates (the writer deletes
and appends copies), truncation (outputs dropped in the middle), clear_output, and the
terminal's live line.
"""

from __future__ import annotations

import io
import re
from typing import Any

from jupyter_ydoc import YNotebook

from ydoc_outputs.cli.mirror import NotebookMirror
from ydoc_outputs.cli.render import TerminalPrinter
from ydoc_outputs.outputs.reducer import OutputLimits, OutputReducer
from ydoc_outputs.store.notebook import load_notebook
from ydoc_outputs.ydoc.writer import OutputWriter

from ..outputs.test_reducer import display, msg, out, update

CELLS = ["a", "b"]
IDLE = msg("status", execution_state="idle")


class Run:
    """A server notebook written by the reducer and writer; a client mirroring it."""

    def __init__(self, limits: OutputLimits | None = None, *, tty: bool = False) -> None:
        self.server = YNotebook()
        load_notebook(self.server, {
            "cells": [{"cell_type": "code", "id": c, "source": "", "metadata": {},
                       "outputs": [], "execution_count": None} for c in CELLS],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
        })  # fmt: skip
        self.reducer = OutputReducer(limits or OutputLimits())
        self.writer = OutputWriter(self.server)
        self.client = YNotebook()
        self.sync()
        self.out = io.StringIO()
        self.printer = TerminalPrinter(self.out, tty=tty, columns=lambda: 80)
        self.mirror = NotebookMirror(self.client.ycells, self.printer, lambda _c, _i: True)
        self.mirror.start()

    def sync(self) -> None:
        update = self.server.ydoc.get_update(self.client.ydoc.get_state())
        self.client.ydoc.apply_update(update)

    def start(self, cell: str = "a") -> None:
        self.reducer.start_cell(cell)
        self.feed([], cell)

    def feed(self, messages: list[Any], cell: str = "a") -> None:
        for message in messages:
            self.reducer.feed(cell, message)
        self.writer.apply(self.reducer.flush())
        self.sync()

    def end(self, cell: str = "a") -> None:
        self.feed([IDLE], cell)

    @property
    def text(self) -> str:
        return self.out.getvalue()


def screen(written: str) -> str:
    """What a terminal shows after ``written``: ``\\r\\x1b[K`` erases the current line."""
    lines = [""]
    for piece in re.split(r"(\r\x1b\[K|\n)", written):
        if piece == "\n":
            lines.append("")
        elif piece == "\r\x1b[K":
            lines[-1] = ""
        else:
            lines[-1] += piece
    return "\n".join(lines)


def test_lines_in_segments_are_printed_once():
    run = Run(OutputLimits(stream_segment_chars=40, cell_output_chars=0))
    run.start()
    expected = "".join(f"line {i}\n" for i in range(300))
    for i in range(0, 300, 7):
        run.feed([out("".join(f"line {j}\n" for j in range(i, min(i + 7, 300))))])
    run.end()
    assert run.text == expected
    assert len(run.server.ycells[0]["outputs"]) > 10  # many segments


def test_a_progress_bar_prints_its_last_state_once():
    run = Run()
    run.start()
    for i in range(0, 2001, 50):
        run.feed([out(f"\r{i}/2000", "stderr")])
    run.feed([out("\rdone: 2000/2000", "stderr")])
    assert run.text == ""  # not a terminal: an unfinished line waits
    run.end()
    assert run.text == "done: 2000/2000\n"


def test_a_progress_bar_is_redrawn_in_place_on_a_terminal():
    run = Run(tty=True)
    run.start()
    run.feed([out("start\n")])
    for i in range(0, 101, 10):
        run.feed([out(f"\r{i}%", "stderr")])
        assert screen(run.text) == f"start\n{i}%"
    run.feed([out("log line\n")])  # a new output: the bar above is over
    run.end()
    assert screen(run.text) == "start\n100%\nlog line\n"
    assert run.text.count("log line") == 1 and run.text.count("start") == 1


def test_a_display_updated_above_streams_reprints_only_the_display():
    run = Run(OutputLimits(stream_segment_chars=30, cell_output_chars=0))
    run.start()
    run.feed([display("d", "first"), out("".join(f"x{i}\n" for i in range(20)))])
    run.feed([out("after\n", "stderr")])
    run.feed([update("d", "second")])
    run.end()
    lines = run.text.splitlines()
    assert lines == ["first", *(f"x{i}" for i in range(20)), "after", "second"]


def test_a_truncated_cell_prints_lines_once_in_order_and_the_marker():
    """Past ``cell_output_chars`` the server moves the middle out of the notebook, within
    the transaction that brought it when it comes fast: those lines never reach a client
    (the marker names where the whole output is). Every line that does is printed once,
    in order; so are the head and the tail."""
    run = Run(OutputLimits(stream_segment_chars=50, cell_output_chars=600))
    run.start()
    for i in range(0, 3000, 7):
        run.feed([out("".join(f"line {j}\n" for j in range(i, i + 7)))])
        if i == 2100:
            seen = run.text.count("\n")
    run.end()
    lines = run.text.splitlines()
    numbers = [int(line.split()[1]) for line in lines if line.startswith("line ")]
    assert numbers == sorted(set(numbers))  # once each, in order
    assert numbers[:30] == list(range(30))  # the head
    outputs = run.client.ycells[0]["outputs"].to_py()
    marker = next(i for i, o in enumerate(outputs) if "truncated" in str(o.get("metadata")))
    tail = "".join(str(o.get("text", "")) for o in outputs[marker:]).splitlines()
    assert numbers[-len(tail) :] == [int(line.split()[1]) for line in tail]  # the tail
    print(f"{len(numbers)} of 3003 lines printed, {seen} lines by line 2100")
    assert len(numbers) > 2000 and seen > 1400
    assert sum("[ydoc-outputs]" in line for line in lines) == 1


def test_clear_output_then_new_output_is_printed():
    run = Run()
    run.start()
    for i in range(3):
        run.feed([msg("clear_output", wait=True), display(None, f"step {i}")])
    run.feed([msg("clear_output", wait=False), out("end\n")])
    run.end()
    assert run.text == "step 0\nstep 1\nstep 2\nend\n"


def test_two_cells_and_a_rerun():
    run = Run()
    run.start("a")
    run.feed([out("a1\n")], "a")
    run.end("a")
    run.start("b")
    run.feed([out("b1\npartial")], "b")
    run.end("b")
    run.start("a")  # cleared and run again: its new output is new
    run.feed([out("a1\n")], "a")
    run.end("a")
    assert run.text == "a1\nb1\npartial\na1\n"
    assert run.mirror.running() == set()


def test_cells_moved_by_a_user_are_not_printed_again():
    run = Run()
    run.start("a")
    run.feed([out("one\n")], "a")
    run.end("a")
    # A page moves a cell: delete and insert a copy, in one transaction.
    with run.server.ydoc.transaction():
        cell = run.server.ycells[0].to_py()
        del run.server.ycells[0]
        run.server.ycells.append(run.server.create_ycell(cell))
    run.sync()
    assert run.text == "one\n"


def test_the_initial_state_is_printed():
    run = Run()
    run.start()
    run.feed([out("before\n"), display(None, "shown")])
    run.end()
    late = io.StringIO()
    printer = TerminalPrinter(late, tty=False)
    NotebookMirror(run.client.ycells, printer, lambda c, _i: c == "a").start()
    assert late.getvalue() == "before\nshown\n"


def test_cells_changed_in_one_transaction_print_in_notebook_order():
    """A pump batch can end a cell and run the next in one transaction (the runner sends
    cells ahead); its events reach the mirror in no set cell order (it varies from one
    document to the next), so several documents are checked."""
    for _ in range(20):
        run = Run()
        run.start("a")
        run.feed([out("a0\n")], "a")
        reducer = run.reducer
        reducer.feed("a", out("a1\n"))
        reducer.feed("a", IDLE)
        reducer.start_cell("b")
        reducer.feed("b", out("b0\n"))
        reducer.feed("b", IDLE)
        run.writer.apply(reducer.flush())
        run.sync()
        assert run.text == "a0\na1\nb0\n"
