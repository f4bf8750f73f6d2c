"""Cron due times (UTC) and the promotion rule, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.cron import check_cron, latest_due, next_due
from storage.promotion import decide


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def test_latest_due_is_the_newest_due_time_at_or_before_now() -> None:
    assert latest_due("0 3 * * *", ts(2024, 1, 2, 3, 0)) == ts(2024, 1, 2, 3, 0)
    assert latest_due("0 3 * * *", ts(2024, 1, 2, 3, 0, 59)) == ts(2024, 1, 2, 3, 0)
    assert latest_due("0 3 * * *", ts(2024, 1, 2, 2, 59, 59)) == ts(2024, 1, 1, 3, 0)
    assert latest_due("*/15 * * * *", ts(2024, 1, 1, 10, 44)) == ts(2024, 1, 1, 10, 30)
    assert next_due("*/15 * * * *", ts(2024, 1, 1, 10, 44)) == ts(2024, 1, 1, 10, 45)
    # Every tick within one minute computes the same due time: that is the unique key.
    assert {latest_due("* * * * *", ts(2024, 1, 1, 0, 0) + s) for s in range(60)} == {
        ts(2024, 1, 1, 0, 0)
    }


@pytest.mark.parametrize(
    "bad", ["", "* * * *", "* * * * * *", "61 * * * *", "0 24 * * *", "a b c d e", "@daily"]
)
def test_check_cron_refuses_what_beat_cannot_keep(bad: str) -> None:
    with pytest.raises(ValueError):
        check_cron(bad)


def test_check_cron_normalises_spaces() -> None:
    assert check_cron("  0  3 * *   1-5 ") == "0 3 * * 1-5"


def test_promotion_needs_the_margin_and_the_first_candidate_always_wins() -> None:
    assert decide(0.4, None, 0.5) == "promoted"
    assert decide(0.3, 0.2, 0.1) == "promoted"  # 0.3 - 0.2 is 0.09999999999999998
    assert decide(0.79, 0.7, 0.1) == "kept"
    assert decide(0.7, 0.7, 0.0) == "promoted"
    assert decide(0.69, 0.7, 0.0) == "kept"
    assert decide(0.69, 0.7, -0.02) == "promoted"  # a negative margin tolerates a small loss
