"""Outputs as terminal text, and the printer's once-only lines."""

from __future__ import annotations

import io

from ydoc_outputs.cli.render import OutputRecord, TerminalPrinter, output_text

RED_TRACEBACK = ["\x1b[31mTraceback\x1b[39m", "\x1b[31mZeroDivisionError\x1b[39m: division by zero"]


def test_output_text_of_each_kind():
    assert output_text({"output_type": "stream", "name": "stdout", "text": ["a\n", "b"]}) == "a\nb"
    error = {"output_type": "error", "ename": "E", "evalue": "v", "traceback": RED_TRACEBACK}
    assert output_text(error) == "\n".join(RED_TRACEBACK) + "\n"
    assert output_text({"output_type": "error", "ename": "E", "evalue": "v"}) == "E: v\n"
    result = {"output_type": "execute_result", "data": {"text/plain": "3"}, "metadata": {}}
    assert output_text(result) == "3\n"
    image = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    assert output_text(image) == "[image/png]\n"
    continued = {
        "output_type": "display_data",
        "data": {"text/plain": ""},
        "metadata": {"ydoc_outputs": {"continued": True}},
    }
    assert output_text(continued) == ""


def test_colours_are_kept_on_a_terminal_only():
    for tty, expected in [(True, RED_TRACEBACK[1]), (False, "ZeroDivisionError: division by zero")]:
        out = io.StringIO()
        printer = TerminalPrinter(out, tty=tty)
        printer.update(OutputRecord(), RED_TRACEBACK[1] + "\n")
        assert out.getvalue() == expected + "\n"


def test_a_line_is_printed_once_it_ends_and_a_rewrite_prints_from_the_changed_line():
    out = io.StringIO()
    printer = TerminalPrinter(out, tty=False)
    record = OutputRecord()
    printer.update(record, "one\ntw")
    printer.update(record, "one\ntwo\nthr")
    assert out.getvalue() == "one\ntwo\n"
    printer.update(record, "one\nTWO\nthree\n")  # another client edited a printed line
    assert out.getvalue() == "one\ntwo\nTWO\nthree\n"
    printer.finish(record)
    assert out.getvalue() == "one\ntwo\nTWO\nthree\n"


def test_a_live_line_too_wide_for_the_terminal_shows_its_end():
    out = io.StringIO()
    printer = TerminalPrinter(out, tty=True, columns=lambda: 11)
    printer.update(OutputRecord(), "0123456789abcdef")
    assert out.getvalue() == "6789abcdef"  # 10 columns: a line ending at the edge would wrap
    printer.close()
    assert out.getvalue().endswith("0123456789abcdef\n")


def test_headers_name_each_cell():
    out = io.StringIO()
    printer = TerminalPrinter(out, tty=False, headers=True)
    printer.update(OutputRecord(label="cell 0"), "a\n")
    printer.update(OutputRecord(label="cell 0"), "b\n")
    printer.update(OutputRecord(label="cell 2"), "c\n")
    assert out.getvalue() == "--- cell 0 ---\na\nb\n--- cell 2 ---\nc\n"
