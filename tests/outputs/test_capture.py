"""apply_captured: output inside `with out:` as JupyterLab's output area applies it."""

from __future__ import annotations

from typing import Any

from ydoc_outputs.outputs.capture import MAX_CAPTURED_OUTPUTS, MAX_STREAM_CHARS, apply_captured


def msg(msg_type: str, **content: Any) -> dict[str, Any]:
    return {"header": {"msg_type": msg_type}, "content": content}


def test_streams_continue_and_other_outputs_follow() -> None:
    outputs: list[dict[str, Any]] = []
    pending = False
    for m in [msg("stream", name="stdout", text="epoch 0\n"),
              msg("stream", name="stdout", text="epoch 1\n"),
              msg("stream", name="stderr", text="warn\n"),
              msg("display_data", data={"text/plain": "x"}, metadata={}),
              msg("stream", name="stdout", text="epoch 2\n")]:  # fmt: skip
        outputs, pending = apply_captured(outputs, pending, m)
    assert outputs == [
        {"output_type": "stream", "name": "stdout", "text": "epoch 0\nepoch 1\n"},
        {"output_type": "stream", "name": "stderr", "text": "warn\n"},
        {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "epoch 2\n"},
    ]
    assert not pending


def test_clear_output_now_and_at_the_next_output() -> None:
    before = [{"output_type": "stream", "name": "stdout", "text": "old\n"}]
    assert apply_captured(before, False, msg("clear_output", wait=False)) == ([], False)
    kept, pending = apply_captured(before, False, msg("clear_output", wait=True))
    assert kept == before and pending  # no flicker: cleared when the next output comes
    after, pending = apply_captured(kept, pending, msg("stream", name="stdout", text="new\n"))
    assert after == [{"output_type": "stream", "name": "stdout", "text": "new\n"}]
    assert not pending


def test_an_error_and_a_result_are_outputs_too() -> None:
    outputs, _ = apply_captured([], False, msg("error", ename="E", evalue="v", traceback=["t"]))
    outputs, _ = apply_captured(
        outputs, False, msg("execute_result", data={"text/plain": "1"}, metadata={},
                            execution_count=3))  # fmt: skip
    assert [o["output_type"] for o in outputs] == ["error", "execute_result"]
    assert outputs[0] == {"output_type": "error", "ename": "E", "evalue": "v",
                          "traceback": ["t"]}  # fmt: skip


def test_what_is_not_an_output_changes_nothing() -> None:
    before = [{"output_type": "stream", "name": "stdout", "text": "a"}]
    assert apply_captured(before, True, msg("status", execution_state="idle")) == (before, True)
    assert apply_captured(before, False, msg("stream", name="stdout", text=None)) == (
        before,
        False,
    )


def test_the_outputs_kept_are_bounded() -> None:
    outputs: list[dict[str, Any]] = []
    for i in range(MAX_CAPTURED_OUTPUTS + 10):
        outputs, _ = apply_captured(outputs, False, msg("display_data", data={"i": i}))
    assert len(outputs) == MAX_CAPTURED_OUTPUTS
    assert outputs[0]["data"] == {"i": 10}  # the oldest went first


def test_a_stream_keeps_its_latest_text_only() -> None:
    outputs: list[dict[str, Any]] = []
    line = "x" * 999 + "\n"
    for _ in range(MAX_STREAM_CHARS // 1000 + 5):
        outputs, _ = apply_captured(outputs, False, msg("stream", name="stdout", text=line))
    [stream] = outputs
    assert len(stream["text"]) == MAX_STREAM_CHARS and stream["text"].endswith(line)
