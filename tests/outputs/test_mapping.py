"""Tests for ydoc_outputs.outputs.mapping: iopub content -> nbformat 4.5 outputs."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from ydoc_outputs.outputs.mapping import display_id_of, output_from_message

TRANSIENT = {"display_id": "d1"}
BUNDLE = {"text/plain": "42", "text/html": "<b>42</b>"}


def assert_valid(*outputs: dict[str, Any]) -> None:
    cell = {
        "id": "cell-1",
        "cell_type": "code",
        "metadata": {},
        "source": "x",
        "execution_count": 1,
        "outputs": list(outputs),
    }
    nbformat.validate({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})


def test_stream() -> None:
    output = output_from_message("stream", {"name": "stdout", "text": "hi\n"})
    assert output == {"output_type": "stream", "name": "stdout", "text": "hi\n"}
    assert output is not None
    assert_valid(output)


def test_display_data_drops_transient() -> None:
    content = {"data": BUNDLE, "metadata": {"isolated": True}, "transient": TRANSIENT}
    output = output_from_message("display_data", content)
    assert output == {"output_type": "display_data", "data": BUNDLE, "metadata": {"isolated": True}}
    assert output is not None
    assert_valid(output)


def test_display_data_without_metadata_gets_empty_metadata() -> None:
    output = output_from_message("display_data", {"data": BUNDLE})
    assert output is not None
    assert output["metadata"] == {}
    assert_valid(output)


def test_execute_result() -> None:
    content = {"data": BUNDLE, "metadata": {}, "execution_count": 7, "transient": TRANSIENT}
    output = output_from_message("execute_result", content)
    assert output == {
        "output_type": "execute_result",
        "data": BUNDLE,
        "metadata": {},
        "execution_count": 7,
    }
    assert output is not None
    assert_valid(output)


def test_error() -> None:
    content = {"ename": "ValueError", "evalue": "bad", "traceback": ["line 1", "line 2"]}
    output = output_from_message("error", content)
    assert output == {"output_type": "error", **content}
    assert output is not None
    assert_valid(output)


def test_output_does_not_share_the_message_dicts() -> None:
    data = dict(BUNDLE)
    output = output_from_message("display_data", {"data": data, "metadata": {}})
    assert output is not None
    data["text/plain"] = "changed"
    assert output["data"]["text/plain"] == "42"


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [
        ("stream", {"name": "stdout"}),
        ("stream", {"text": "x"}),
        ("stream", {"name": "stdout", "text": ["x"]}),
        ("display_data", {}),
        ("display_data", {"data": "text"}),
        ("display_data", {"data": {}, "metadata": []}),
        ("execute_result", {"data": {}, "metadata": {}, "execution_count": "1"}),
        ("execute_result", {"data": {}, "metadata": {}, "execution_count": True}),
        ("error", {"ename": "E"}),
        ("error", {"ename": "E", "evalue": "v", "traceback": "not a list"}),
        ("error", {"ename": "E", "evalue": "v", "traceback": [1]}),
        ("status", {"execution_state": "idle"}),
        ("update_display_data", {"data": {}, "metadata": {}, "transient": TRANSIENT}),
        ("no_such_type", {}),
    ],
)
def test_malformed_or_non_output_messages_give_none(msg_type: str, content: dict[str, Any]) -> None:
    assert output_from_message(msg_type, content) is None


def test_display_id_of() -> None:
    assert display_id_of({"transient": {"display_id": "abc"}}) == "abc"
    assert display_id_of({"transient": {}}) is None
    assert display_id_of({"transient": {"display_id": ""}}) is None
    assert display_id_of({"transient": {"display_id": 3}}) is None
    assert display_id_of({"transient": None}) is None
    assert display_id_of({}) is None
