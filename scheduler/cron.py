"""Cron expressions (five fields, UTC) through croniter: validation and due times."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter


def check_cron(expression: str) -> str:
    """The expression, normalised; ValueError saying what is wrong.

    Five fields only (minute hour day month weekday): beat ticks once a minute, so a
    seconds field would promise what it cannot keep.
    """
    text = " ".join(expression.split())
    fields = text.split(" ") if text else []
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} field(s); expected 5 "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * *'"
        )
    if not croniter.is_valid(text):
        raise ValueError(f"{expression!r} is not a valid cron expression")
    return text


def latest_due(expression: str, now: float) -> float:
    """The newest due time at or before ``now`` (epoch seconds, UTC)."""
    at = datetime.fromtimestamp(now, UTC)
    if croniter.match(expression, at):
        at = at.replace(second=0, microsecond=0)
        return at.timestamp()
    prev: datetime = croniter(expression, at).get_prev(datetime)
    return prev.timestamp()


def next_due(expression: str, now: float) -> float:
    """The first due time after ``now``."""
    nxt: datetime = croniter(expression, datetime.fromtimestamp(now, UTC)).get_next(datetime)
    return nxt.timestamp()
