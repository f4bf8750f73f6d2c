"""Bytes each team holds in the object store, from the SQL record of every stored object.

Every object lives under ``teams/<team>/<kind>/...`` (DESIGN §6) and has a row with its
size, so a team's use is a sum over its prefix: datasets, models, and jobs (checkpoints
and predictions). Objects outside a team (backups) are the operators' and not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from storage.layout import TEAM_KINDS, team_kind_prefix, team_root
from storage.models import StoredObject

KINDS = TEAM_KINDS


def stored_bytes(session: Session, team_id: str) -> dict[str, int]:
    """``{"total": n, "datasets": n, "models": n, "jobs": n}`` for one team."""
    base = team_root(team_id)
    key, size = StoredObject.key, StoredObject.size
    by_kind = [
        func.coalesce(
            func.sum(
                case(
                    (key.startswith(team_kind_prefix(team_id, kind), autoescape=True), size),
                    else_=0,
                )
            ),
            0,
        )
        for kind in KINDS
    ]
    row = session.execute(
        select(func.coalesce(func.sum(size), 0), *by_kind).where(
            key.startswith(base, autoescape=True)
        )
    ).one()
    total, *kinds = (int(value) for value in row)
    return {"total": total, **dict(zip(KINDS, kinds, strict=True))}


def stored_bytes_by_team(session: Session, team_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    return {team_id: stored_bytes(session, team_id) for team_id in team_ids}
