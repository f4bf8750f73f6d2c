"""Query parameters: cursor paging and every whole number a URL carries.

Ids are time-ordered, so the cursor is the last id seen. Every numeric query parameter
is read by :func:`query_int`: typed and bounded, a 422 naming the parameter, never a
ValueError or an integer too large for the database (a 500 before issue 20).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from flask import request
from pydantic import BaseModel, ConfigDict, Field

from api.errors import invalid

# The largest id of an integer-keyed row (job events, incidents): a 32-bit INTEGER
# column on PostgreSQL.
MAX_ROW_ID = 2**31 - 1
# ASCII digits only: str.isdigit() also takes "²", which int() refuses.
_WHOLE = re.compile(r"[0-9]{1,12}")


def query_int(name: str, default: int, minimum: int, maximum: int, raw: str | None = None) -> int:
    """The query parameter ``name`` (or ``raw``, e.g. a header's value) as a whole number
    from ``minimum`` to ``maximum``; ``default`` when it is absent or empty."""
    value = request.args.get(name) if raw is None else raw
    if value is None or value == "":
        return default
    if not _WHOLE.fullmatch(value) or not minimum <= int(value) <= maximum:
        raise invalid(name, f"a whole number from {minimum} to {maximum}")
    return int(value)


def page_params(default: int = 50, maximum: int = 500) -> tuple[int, str | None]:
    return query_int("limit", default, 1, maximum), request.args.get("cursor") or None


def paged(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """Callers fetch limit+1 rows; the extra one only says whether a next page exists."""
    more = len(items) > limit
    items = items[:limit]
    return {"data": items, "next_cursor": items[-1]["id"] if more and items else None}


# The query parameters as the OpenAPI document describes them; the views read them with
# query_int and page_params above, within these same bounds (tests/observability/
# test_openapi.py asks each list route for the largest documented page and one more).


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=500, description="page size")
    cursor: str | None = Field(None, description="the last id of the previous page")


class FollowQuery(Query):
    after: int = Field(
        0, ge=0, le=MAX_ROW_ID, description="the last event id seen (Last-Event-ID wins)"
    )
    follow: Literal["1", "true"] | None = Field(
        None, description="stream text/event-stream until the job is terminal"
    )
    limit: int = Field(200, ge=1, le=1000, description="page size (without follow)")
