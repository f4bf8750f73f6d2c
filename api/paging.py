"""Cursor paging: ids are time-ordered, so the cursor is the last id seen."""

from __future__ import annotations

from typing import Any

from flask import request

from api.errors import invalid


def page_params(default: int = 50, maximum: int = 500) -> tuple[int, str | None]:
    raw = request.args.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid("limit", f"a whole number from 1 to {maximum}")
    return int(raw), request.args.get("cursor") or None


def paged(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """Callers fetch limit+1 rows; the extra one only says whether a next page exists."""
    more = len(items) > limit
    items = items[:limit]
    return {"data": items, "next_cursor": items[-1]["id"] if more and items else None}
