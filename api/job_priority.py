"""PATCH /v1/jobs/<id>: a member changes a waiting job's priority within the team's limit."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict

from api import responses
from api.auth import requires
from api.context import db, platform
from api.errors import ApiError, invalid
from api.jobs import job_json, owned_job
from api.openapi import documented
from scheduler.admission_requests import request_admission
from storage.models import Team
from storage.priorities import PRIORITIES
from storage.states import JobState, record_event

bp = Blueprint("job_priority", __name__, url_prefix="/v1/jobs")


class JobEdit(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    priority: Literal["high", "normal", "low"]


@bp.patch("/<job_id>")
@documented({200: responses.Job}, (400, 403, 404, 409, 422), tag="jobs", json=JobEdit)
@requires("member")
def edit(job_id: str) -> Response:
    """Change a pending job's priority, within the team's highest."""
    job = owned_job(job_id)
    change = JobEdit.model_validate(request.get_json(silent=True) or {})
    if job.state != JobState.PENDING.value:
        raise ApiError(
            409,
            "conflict",
            f"only a pending job's priority can change; this one is {job.state}",
            "priority",
        )
    team = db().get(Team, job.team_id)
    assert team is not None
    if PRIORITIES[change.priority] > PRIORITIES.get(team.max_priority, 2):
        raise invalid(
            "priority",
            f"team {team.name} may ask for at most {team.max_priority}",
            limit=team.max_priority,
        )
    old = next(k for k, v in PRIORITIES.items() if v == job.priority)
    job.priority = PRIORITIES[change.priority]
    record_event(
        db(),
        job.id,
        "edit",
        reason=f"priority {old} -> {change.priority}",
        data={"priority": change.priority},
    )
    db().commit()
    if request_admission(platform()):
        db().refresh(job)
    return jsonify(job_json(job))
