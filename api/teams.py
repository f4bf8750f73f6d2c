"""/v1/teams and /v1/keys: quotas, usage, keys. Operators manage every team; a team's
admins manage their own keys and queue; everyone may read their own team."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from api import team_responses as answers
from api.auth import requires
from api.commit_answer import commit_with_answer
from api.context import caller, db, platform, team_id
from api.errors import ApiError, invalid, not_found
from api.openapi import documented
from api.times import rfc3339
from scheduler.usage import gpu_hours_by_team, period_start
from storage.models import ApiKey, Job, Team
from storage.states import HOLDING_SLOTS, JobState
from storage.stored_bytes import stored_bytes
from storage.teams import TeamError, create_team, issue_key, revoke

bp = Blueprint("teams", __name__, url_prefix="/v1")


class TeamLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    weight: float | None = Field(None, gt=0, le=1000)
    max_gpus: int | None = Field(None, ge=0, le=100_000)
    gpu_hours_budget: float | None = Field(None, ge=0)
    can_borrow: bool | None = None
    max_priority: Literal["high", "normal", "low"] | None = None
    queue_state: Literal["open", "held", "draining"] | None = None


class TeamCreate(TeamLimits):
    name: str = Field(min_length=1, max_length=63)


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    role: Literal["admin", "member", "viewer"] = "member"


def _is_operator() -> bool:
    team = db().get(Team, team_id())
    return bool(team and team.operator and caller().role == "admin")


def _visible_team(ident: str) -> Team:
    team = db().get(Team, ident)
    if team is None or (team.id != team_id() and not _is_operator()):
        raise not_found("team", ident)
    return team


def team_json(team: Team) -> dict[str, Any]:
    session = db()
    settings = platform().settings
    since = period_start(settings.budget_period_days)
    used = gpu_hours_by_team(session, since).get(team.id, 0.0)
    counts = dict(
        session.execute(
            select(Job.state, func.count()).where(Job.team_id == team.id).group_by(Job.state)
        ).all()
    )
    gpus_in_use = session.scalar(
        select(func.coalesce(func.sum(Job.slots), 0)).where(
            Job.team_id == team.id, Job.state.in_([s.value for s in HOLDING_SLOTS])
        )
    )
    return {
        "id": team.id,
        "name": team.name,
        "weight": team.weight,
        "operator": team.operator,
        "quota": {
            "max_gpus": team.max_gpus,
            "gpu_hours_budget": team.gpu_hours_budget,
            "can_borrow": team.can_borrow,
            "max_priority": team.max_priority,
        },
        "queue_state": team.queue_state,
        "usage": {
            "period_start": rfc3339(since),
            "gpu_hours": round(used, 4),
            "gpu_hours_left": None
            if team.gpu_hours_budget is None
            else round(max(0.0, team.gpu_hours_budget - used), 4),
            "gpus_in_use": int(gpus_in_use or 0),
            # Object-store bytes: total, and datasets / models / jobs (checkpoints, outputs).
            "stored_bytes": stored_bytes(session, team.id),
        },
        "jobs": {
            "running": sum(
                counts.get(s.value, 0)
                for s in (JobState.RUNNING, JobState.CANCELLING, JobState.PREEMPTING)
            ),
            "queued": counts.get(JobState.QUEUED.value, 0),
            "pending": counts.get(JobState.PENDING.value, 0),
        },
    }


# null means "no limit" only for these; the other settings always have a value.
NULLABLE_LIMITS = frozenset({"max_gpus", "gpu_hours_budget"})


def _apply(team: Team, limits: TeamLimits, fields: set[str]) -> None:
    for name in sorted(fields - NULLABLE_LIMITS):
        if getattr(limits, name) is None:
            raise invalid(name, "may not be null; leave it out to keep the current value")
    for name in fields:
        setattr(team, name, getattr(limits, name))


@bp.get("/teams/me")
@documented({200: answers.TeamOfCaller}, tag="teams")
def me() -> Response:
    """The caller's team: quota, usage, jobs, and the key's role."""
    # The key's role too: the dashboard offers Cancel only where the API would allow it.
    return jsonify({**team_json(_visible_team(team_id())), "role": caller().role})


@bp.get("/usage")
@documented({200: answers.Usage}, tag="teams")
def usage() -> Response:
    """The caller's team's usage: GPU-hours this period, GPUs held, bytes stored."""
    return jsonify(team_json(_visible_team(team_id()))["usage"])


@bp.get("/teams")
@documented({200: answers.Teams}, (403,), tag="teams")
@requires("admin")
def list_teams() -> Response:
    """Every team (operators' admins), else the caller's own."""
    query = select(Team).order_by(Team.name)
    if not _is_operator():
        query = query.where(Team.id == team_id())
    return jsonify({"data": [team_json(t) for t in db().scalars(query)]})


@bp.post("/teams")
@documented({201: answers.NewTeam}, (400, 403, 422), tag="teams", json=TeamCreate)
@requires("admin")
def create() -> tuple[Response, int]:
    """Create a team and its first admin key (operators' admins)."""
    if not _is_operator():
        raise ApiError(403, "forbidden", "only the operators' admins create teams")
    spec = TeamCreate.model_validate(request.get_json(silent=True) or {})
    session = db()
    try:
        team, key = create_team(session, spec.name, role="admin")
    except TeamError as exc:
        raise invalid("name", str(exc)) from None
    _apply(team, spec, spec.model_fields_set - {"name"})
    return commit_with_answer(
        session,
        lambda: {"team": team_json(team), "key": key},
        201,
        kept=lambda: {"team": team_json(team), **_shown_once(key)},
    )


@bp.patch("/teams/<ident>")
@documented({200: answers.Team}, (400, 403, 404, 422), tag="teams", json=TeamLimits)
@requires("admin")
def update(ident: str) -> Response:
    """Change a team's quota and weight (operators' admins) or its queue state."""
    team = _visible_team(ident)
    limits = TeamLimits.model_validate(request.get_json(silent=True) or {})
    fields = set(limits.model_fields_set)
    if fields - {"queue_state"} and not _is_operator():
        raise ApiError(403, "forbidden", "only the operators' admins change quotas and weights")
    _apply(team, limits, fields)
    db().commit()
    from scheduler.admission_requests import request_admission

    request_admission(platform())
    return jsonify(team_json(team))


@bp.get("/teams/<ident>/keys")
@documented({200: answers.Keys}, (403, 404), tag="teams")
@requires("admin")
def list_keys(ident: str) -> Response:
    """A team's keys: prefixes and roles, never the keys."""
    team = _visible_team(ident)
    keys = db().scalars(select(ApiKey).where(ApiKey.team_id == team.id).order_by(ApiKey.id))
    return jsonify(
        {
            "data": [
                {
                    "id": k.id,
                    "prefix": k.prefix,
                    "role": k.role,
                    "created_at": rfc3339(k.created_at),
                    "revoked_at": rfc3339(k.revoked_at),
                }
                for k in keys
            ]
        }
    )


@bp.post("/teams/<ident>/keys")
@documented({201: answers.NewKey}, (400, 403, 404, 422), tag="teams", json=KeyCreate)
@requires("admin")
def new_key(ident: str) -> tuple[Response, int]:
    """Issue a key; it is in this answer only."""
    team = _visible_team(ident)
    spec = KeyCreate.model_validate(request.get_json(silent=True) or {})
    key = issue_key(db(), team, spec.role)
    return commit_with_answer(
        db(),
        lambda: {"key": key, "role": spec.role},
        201,
        kept=lambda: {**_shown_once(key), "role": spec.role},
    )


def _shown_once(key: str) -> dict[str, Any]:
    """What a retry of a call that issued ``key`` gets: its prefix, never the key itself."""
    return {
        "key": None,
        "key_prefix": key.split("_")[1],
        "key_shown_once": "the key was in the first answer only; if it was lost, revoke it "
        "by its prefix (GET /v1/teams/<team>/keys) and issue another",
    }


@bp.post("/keys/<key_id>/revoke")
@documented({200: answers.Revoked}, (403, 404), tag="teams")
@requires("admin")
def revoke_key(key_id: str) -> Response:
    """Revoke a key: it is refused from the next call on."""
    key = db().get(ApiKey, key_id)
    # Another team's key answers exactly like a missing one (its team's id is no hint).
    if key is None or (key.team_id != team_id() and not _is_operator()):
        raise not_found("key", key_id)
    revoke(db(), key_id)
    db().commit()
    return jsonify({"id": key_id, "revoked": True})
