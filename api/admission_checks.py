"""Submit-time refusals as API errors (the rules live in scheduler.refusals)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import ApiError
from scheduler.refusals import refusal


def check_admissible(session: Session, team_id: str, slots: int, priority: str) -> None:
    found = refusal(session, team_id, slots, priority)
    if found is None:
        return
    extra = {"limit": found.limit} if found.limit is not None else {}
    raise ApiError(found.status, found.code, found.message, found.field, **extra)
