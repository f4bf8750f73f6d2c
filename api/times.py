"""The one way the native API writes a moment: RFC 3339 in UTC, to the second.

``2026-12-07T01:02:03Z``: what JavaScript's ``Date``, Python's ``datetime.fromisoformat``
and every JSON schema ``date-time`` read. Rows keep unix seconds (SQL, Redis); they
become text only here, on the way out. The OpenAI-compatible routes are the exception
on purpose: OpenAI's own clients expect unix seconds there (``created_at: 1733533323``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(ts: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC text; None stays None (a moment not reached yet)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(float(ts), UTC).strftime(FORMAT)


def with_moment(record: dict[str, Any] | None, key: str = "at") -> dict[str, Any] | None:
    """A copy of a stored record (a progress report, a log line) whose ``key`` is text."""
    if not record or not isinstance(record.get(key), int | float):
        return record
    return {**record, key: rfc3339(record[key])}
