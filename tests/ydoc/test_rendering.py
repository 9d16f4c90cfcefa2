"""What stock JupyterLab 4 renders from the writer's changes, simulated exactly.

JupyterLab's ``CodeCellModel`` applies a cell's Y changes to its output-area model like
this (read from @jupyterlab/cells 4 and @jupyterlab/outputarea 4):

- text changes of any stream output's ``Text`` go to the *last* model output, first;
- then the outputs array delta: ``retain`` moves, ``delete`` removes model outputs by
  index (nothing if out of range), ``insert`` *adds* at the end, merging a stream into the
  last model output when the previously added output was a stream of that name (a
  removal does not forget that name).

So a model can hold fewer outputs than the document, and a deletion the server makes by
the document's index can hit another output. These tests run the real reducer and writer
on a YNotebook and check after every batch that the simulated model renders what the
document holds.
"""

from __future__ import annotations

import random
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Array, ArrayEvent, Map, TextEvent

from ydoc_outputs.outputs.reducer import OutputLimits, OutputReducer
from ydoc_outputs.store.notebook import load_notebook
from ydoc_outputs.ydoc.writer import OutputWriter

from ..outputs.test_reducer import display, msg, out, update

CELL = "c"


class LabOutputModel:
    """JupyterLab 4's OutputAreaModel, as driven by CodeCellModel from Y events."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._last_stream_name = ""
        #: Merges of a stream into the last output. JupyterLab then writes the merged
        #: text back into the document at its own index: each merge corrupts it.
        self.merges = 0

    def add(self, output: dict[str, Any]) -> None:
        output = dict(output)
        if output.get("output_type") == "stream":
            text = output.get("text", "")
            output["text"] = text if isinstance(text, str) else "".join(text)
            if output["name"] == self._last_stream_name and self.items:
                last = self.items[-1]
                assert "text" in last, f"a stream merged into a {last['output_type']}"
                last["text"] += output["text"]
                self.merges += 1
                return
            self._last_stream_name = output["name"]
        else:
            self._last_stream_name = ""
        self.items.append(output)

    def on_events(self, events: list[Any]) -> None:
        for event in events:  # stream text changes first
            changes: Any = event
            if isinstance(event, TextEvent):
                last = self.items[-1]
                assert last.get("output_type") == "stream", "a text change on a non-stream"
                for delta in changes.delta:
                    if "delete" in delta:
                        # pycrdt counts UTF-8 bytes where the browser's Yjs counts UTF-16
                        # units: the same characters either way.
                        kept = last["text"].encode()[: -delta["delete"] or None]
                        last["text"] = kept.decode()
                    if "insert" in delta:
                        last["text"] += str(delta["insert"])
        for event in events:  # then the outputs array
            changes = event
            if isinstance(event, ArrayEvent) and not changes.path:
                index = 0
                for delta in changes.delta:
                    index += delta.get("retain", 0)
                    for _ in range(delta.get("delete", 0)):
                        if index < len(self.items):
                            del self.items[index]
                    for output in delta.get("insert", ()):
                        self.add(output.to_py() if isinstance(output, Map) else output)


def merged(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a page that loads the document renders: consecutive streams merged."""
    model = LabOutputModel()
    for output in outputs:
        model.add(output)
    return model.items


class Page:
    """A notebook written by the real reducer and writer, and a page watching it."""

    def __init__(self, limits: OutputLimits) -> None:
        self.notebook = YNotebook()
        load_notebook(self.notebook, {
            "cells": [{"cell_type": "code", "id": CELL, "source": "", "metadata": {},
                       "outputs": [], "execution_count": None}],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
        })  # fmt: skip
        self.reducer = OutputReducer(limits)
        self.writer = OutputWriter(self.notebook)
        self.model = LabOutputModel()
        outputs = self.notebook.ycells[0]["outputs"]
        assert isinstance(outputs, Array)
        self._subscription = outputs.observe_deep(self.model.on_events)

    def feed(self, messages: list[Any]) -> None:
        for message in messages:
            self.reducer.feed(CELL, message)
        self.writer.apply(self.reducer.flush())
        document = self.notebook.get_cell(0)["outputs"]
        assert self.model.items == merged(document)
        assert self.model.merges == 0


def test_segments_of_a_long_stream_are_never_merged() -> None:
    page = Page(OutputLimits(stream_segment_chars=50, cell_output_chars=0))
    for i in range(40):
        page.feed([out(f"line {i}\n"), out("par"), out("tial\r")])
    texts = [item["text"] for item in page.model.items if item["output_type"] == "stream"]
    assert len(texts) > 2 and "".join(texts).endswith("line 39\npartial")


def test_a_truncated_runaway_cell_renders_as_the_document_holds_it() -> None:
    page = Page(OutputLimits(stream_segment_chars=50, cell_output_chars=600))
    for i in range(0, 3000, 7):
        page.feed([out("".join(f"line {j}\n" for j in range(i, i + 7)))])
    marker = next(i for i, item in enumerate(page.model.items) if "truncated" in str(item))
    assert page.model.items[0]["text"].startswith("line 0\nline 1\n") and marker > 0
    assert page.model.items[-1]["text"].endswith("line 3002\n")


def test_a_display_after_long_streams_updates_in_place() -> None:
    page = Page(OutputLimits(stream_segment_chars=30, cell_output_chars=0))
    page.feed([out("".join(f"a{i}\n" for i in range(40)))])
    page.feed([display("d", "first"), out("after\n"), out("err\n", "stderr")])
    page.feed([out("".join(f"b{i}\n" for i in range(40)))])
    page.feed([update("d", "second")])
    assert [item.get("data", {}).get("text/plain") for item in page.model.items].count(
        "second"
    ) == 1


def test_random_output_renders_as_the_document_holds_it() -> None:
    rng = random.Random(20261125)
    for _ in range(40):
        limits = OutputLimits(
            stream_segment_chars=rng.randrange(10, 60),
            cell_output_chars=rng.choice((0, 300, 800)),
        )
        page = Page(limits)
        for i in range(rng.randrange(20, 120)):
            batch: list[Any] = []
            for _ in range(rng.randrange(1, 6)):
                roll = rng.random()
                if roll < 0.7:
                    pieces = ["\n", "\r", "ab", f"{i}", "é", "xyz\n" * rng.randrange(5)]
                    text = "".join(rng.choices(pieces, k=rng.randrange(1, 12)))
                    batch.append(out(text, rng.choice(("stdout", "stdout", "stderr"))))
                elif roll < 0.85:
                    batch.append(display(rng.choice((None, "d1", "d2")), f"v{i}"))
                elif roll < 0.95:
                    batch.append(update(rng.choice(("d1", "d2")), f"u{i}"))
                else:
                    batch.append(msg("clear_output", wait=rng.random() < 0.5))
            page.feed(batch)
