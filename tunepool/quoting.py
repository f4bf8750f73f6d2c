"""How much of a user's input an error message may quote back.

A message names the value at fault so a user can find it, but a 50 MB line quoted
whole made a 52 MB error response (issue 20): every quote goes through here.
"""

from __future__ import annotations

# Enough to recognise the value; short enough for a log line or a JSON error.
MAX_QUOTE = 80


def excerpt(text: str, limit: int = MAX_QUOTE) -> str:
    """``text`` itself when short, else its start and how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def quoted(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters (the repr of a huge string is built
    from its start only)."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value) - limit} more characters)"
    return excerpt(repr(value), limit)
