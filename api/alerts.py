"""/v1/alerts: open and recent incidents; a team sees its own, admins also the pool-wide ones."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import or_, select

from api.auth import requires
from api.context import caller, db, team_id
from api.errors import invalid
from api.paging import MAX_ROW_ID, page_params, query_int
from api.times import rfc3339
from storage.alerts import Incident

bp = Blueprint("alerts", __name__, url_prefix="/v1/alerts")


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
@requires("viewer")
def list_alerts() -> tuple[Response, int]:
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
