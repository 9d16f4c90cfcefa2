"""The benchmarks' verdict on "ours is slower" (benchmarks/report.py): a sign test over
rounds that ran both sides, so that a difference of medians within the rounds' own
spread is not taken for a slower server."""

from __future__ import annotations

import pytest

from benchmarks.report import SIGNIFICANCE, slower_rounds


def test_losing_every_round_is_slower() -> None:
    slower, rounds, p = slower_rounds([1.2] * 9, [1.1] * 9)
    assert (slower, rounds) == (9, 9)
    assert p == pytest.approx(1 / 512)
    assert p < SIGNIFICANCE


def test_losing_seven_rounds_of_nine_is_within_chance() -> None:
    ours = [1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.0, 1.0]
    slower, rounds, p = slower_rounds(ours, [1.1] * 9)
    assert (slower, rounds) == (7, 9)
    assert p == pytest.approx((36 + 9 + 1) / 512)  # 7, 8 or 9 of 9 by chance
    assert p > SIGNIFICANCE


def test_ties_do_not_count_and_unpaired_runs_are_left_out() -> None:
    slower, rounds, p = slower_rounds([1.0, 2.0, 3.0, 9.0], [1.0, 1.0, 4.0])
    assert (slower, rounds) == (1, 2)
    assert p == pytest.approx(3 / 4)


def test_winning_every_round() -> None:
    assert slower_rounds([1.0] * 5, [2.0] * 5) == (0, 5, 1.0)
