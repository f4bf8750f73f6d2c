"""/v1/alerts: open and recent incidents; a team sees its own, admins also the pool-wide ones."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import Field
from sqlalchemy import or_, select

from api.auth import requires
from api.context import caller, db, team_id
from api.errors import invalid
from api.openapi import documented
from api.paging import MAX_ROW_ID, Query, page_params, query_int
from api.team_responses import IncidentPage
from api.times import rfc3339
from storage.alerts import Incident

bp = Blueprint("alerts", __name__, url_prefix="/v1/alerts")


class AlertQuery(Query):
    limit: int = Field(50, ge=1, le=500, description="page size")
    cursor: int | None = Field(
        None, ge=0, le=MAX_ROW_ID, description="the last incident id of the previous page"
    )
    state: Literal["open", "resolved", "all"] = "all"


def incident_json(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "rule": i.rule,
        "subject": i.subject,
        "team_id": i.team_id,
        "severity": i.severity,
        "state": i.state,
        "summary": i.summary,
        "details": i.details,
        "opened_at": rfc3339(i.opened_at),
        "last_seen_at": rfc3339(i.last_seen_at),
        "resolved_at": rfc3339(i.resolved_at),
        "notifications": i.notifications,
    }


@bp.get("")
@documented({200: IncidentPage}, (422,), tag="alerts", query=AlertQuery)
@requires("viewer")
def list_alerts() -> tuple[Response, int]:
    """Open and recent incidents of the team; admins also see the pool-wide ones."""
    limit, cursor = page_params()
    state = request.args.get("state", "all")
    if state not in ("open", "resolved", "all"):
        raise invalid("state", "one of open, resolved, all")
    # Pool-wide incidents (workers, backups, the queue) are operators' business.
    visible = Incident.team_id == team_id()
    if caller().role == "admin":
        visible = or_(visible, Incident.team_id.is_(None))
    query = select(Incident).where(visible).order_by(Incident.id.desc()).limit(limit + 1)
    if state != "all":
        query = query.where(Incident.state == state)
    if cursor is not None:
        query = query.where(Incident.id < query_int("cursor", 0, 0, MAX_ROW_ID))
    items = [incident_json(i) for i in db().scalars(query)]
    more = len(items) > limit
    items = items[:limit]
    return jsonify({"data": items, "next_cursor": str(items[-1]["id"]) if more else None}), 200
