"""/v1/schedules: team-defined periodic retrains with champion/challenger promotion.

A schedule retrains ``model_name`` on the newest dataset named ``dataset_name`` at each
due time of ``cron`` (UTC; or on each new upload with ``trigger: new_dataset``), scores
the candidate and ``production`` on ``evaluation_dataset`` and moves ``production``
only when the candidate wins by ``promotion.min_margin``. Firing and evaluation are the
scheduler's and the workers' (``scheduler.model_updates``); this module stores the
definition and shows the runs. Viewers read; members write; another team's schedule
is a 404.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select

from api import schedule_responses as answers
from api.admission_checks import check_order
from api.auth import requires
from api.context import caller, db, platform, team_id
from api.datasets import owned_dataset
from api.errors import ApiError, invalid, not_found
from api.openapi import documented
from api.paging import PageQuery, page_params, paged
from api.schemas import Resources
from api.times import rfc3339
from api.training_checks import check_hyperparameters
from scheduler.cron import check_cron, next_due
from scheduler.model_updates import fire, newest_dataset
from storage.job_factory import JobOrder
from storage.promotion import METRICS
from storage.schedules import Schedule, ScheduleRun

bp = Blueprint("schedules", __name__, url_prefix="/v1/schedules")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Promotion(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    metric: str = Field(
        "f1", description="f1|precision|recall (NER); accuracy|macro_f1|... (classification)"
    )
    min_margin: float = Field(
        0.0, ge=-1.0, le=1.0, description="candidate - production must reach this to promote"
    )


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str | None = Field(None, pattern=NAME, description="default: the model name")
    trigger: Literal["cron", "new_dataset"] = "cron"
    cron: str | None = Field(None, max_length=128, description="5 fields, UTC: '0 3 * * *'")
    model_name: str = Field(pattern=NAME)
    dataset_name: str = Field(pattern=NAME, description="its newest upload is trained on")
    base: Literal["production", "base_model"] = Field(
        "production", description="continue from production (base_model until there is one)"
    )
    base_model: str = Field("all-MiniLM-L6-v2", min_length=1, max_length=512)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    evaluation_dataset: str = Field(min_length=1, max_length=40, description="a dataset id")
    promotion: Promotion = Field(default_factory=lambda: Promotion(metric="f1", min_margin=0.0))
    priority: Literal["high", "normal", "low"] = "normal"
    resources: Resources = Field(default_factory=lambda: Resources(gpus=1))
    enabled: bool = True


class ScheduleUpdate(BaseModel):
    """Any subset of a schedule's fields; the result is validated as a whole."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    trigger: Literal["cron", "new_dataset"] | None = None
    cron: str | None = Field(None, max_length=128)
    dataset_name: str | None = Field(None, pattern=NAME)
    base: Literal["production", "base_model"] | None = None
    base_model: str | None = Field(None, min_length=1, max_length=512)
    hyperparameters: dict[str, Any] | None = None
    evaluation_dataset: str | None = Field(None, min_length=1, max_length=40)
    promotion: Promotion | None = None
    priority: Literal["high", "normal", "low"] | None = None
    resources: Resources | None = None
    enabled: bool | None = None


def schedule_json(s: Schedule) -> dict[str, Any]:
    upcoming = next_due(s.cron, time.time()) if s.trigger == "cron" and s.cron else None
    return {
        "id": s.id,
        "name": s.name,
        "trigger": s.trigger,
        "cron": s.cron,
        "task": s.task,
        "model_name": s.model_name,
        "dataset_name": s.dataset_name,
        "base": s.base,
        "base_model": s.base_model,
        "hyperparameters": s.hyperparameters,
        "evaluation_dataset": s.evaluation_dataset,
        "promotion": {"metric": s.metric, "min_margin": s.min_margin},
        "priority": s.priority,
        "resources": {"gpus": s.gpus},
        "enabled": s.enabled,
        "next_fire_at": rfc3339(upcoming) if s.enabled else None,
        "last_fire_time": rfc3339(s.last_fire_time),
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    }


def run_json(r: ScheduleRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "schedule_id": r.schedule_id,
        "fire_time": rfc3339(r.fire_time),
        "trigger": r.trigger,
        "state": r.state,
        "outcome": r.outcome,
        "reason": r.reason,
        "dataset_id": r.dataset_id,
        "base_model": r.base_model,
        "job_id": r.job_id,
        "evaluate_job_id": r.evaluate_job_id,
        "evaluation_dataset": r.evaluation_dataset,
        "metric": r.metric,
        "min_margin": r.min_margin,
        "candidate": {"version": r.candidate_version, "score": r.candidate_score},
        "champion": {"version": r.champion_version, "score": r.champion_score},
        "scores": r.scores,
        "created_at": rfc3339(r.created_at),
        "decided_at": rfc3339(r.decided_at),
    }


def owned_schedule(schedule_id: str) -> Schedule:
    row = db().get(Schedule, schedule_id)
    if row is None or row.team_id != team_id():
        raise not_found("schedule", schedule_id)
    return row


def _checked(spec: ScheduleCreate) -> dict[str, Any]:
    """Column values for a valid schedule; 422 naming the field otherwise."""
    session = db()
    if spec.trigger == "cron":
        if not spec.cron:
            raise invalid("cron", "required when trigger is cron, e.g. '0 3 * * *' (UTC)")
        try:
            cron: str | None = check_cron(spec.cron)
        except ValueError as exc:
            raise invalid("cron", str(exc)) from None
    else:
        cron = None
    dataset = newest_dataset(session, team_id(), spec.dataset_name)
    if dataset is None:
        raise invalid("dataset_name", f"no dataset named {spec.dataset_name}")
    if dataset.task not in METRICS:
        raise invalid(
            "dataset_name", f"is a {dataset.task} dataset; schedules retrain {', '.join(METRICS)}"
        )
    evaluation = owned_dataset(spec.evaluation_dataset, "evaluation_dataset")
    if evaluation.task != dataset.task:
        raise invalid("evaluation_dataset", f"is a {evaluation.task} dataset, not {dataset.task}")
    if spec.promotion.metric not in METRICS[dataset.task]:
        raise invalid(
            "promotion.metric",
            f"{dataset.task} models are compared on one of {', '.join(METRICS[dataset.task])}",
        )
    check_hyperparameters(spec.hyperparameters, dataset.task)
    # The job factory's checks, on the retrain job the schedule will submit (again when
    # it fires: the allow-list, the team's models and its limits may change meanwhile).
    check_order(
        JobOrder(
            team_id=team_id(),
            type="finetune",
            task=dataset.task,
            spec={},
            priority=spec.priority,
            slots=spec.resources.gpus,
            model_name=spec.model_name,
            base_model=spec.base_model,
        )
    )
    return {
        "name": spec.name or spec.model_name,
        "trigger": spec.trigger,
        "cron": cron,
        "task": dataset.task,
        "model_name": spec.model_name,
        "dataset_name": spec.dataset_name,
        "base": spec.base,
        "base_model": spec.base_model,
        "hyperparameters": spec.hyperparameters,
        "evaluation_dataset": evaluation.id,
        "metric": spec.promotion.metric,
        "min_margin": spec.promotion.min_margin,
        "priority": spec.priority,
        "gpus": spec.resources.gpus,
        "enabled": spec.enabled,
    }


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "send a JSON object with Content-Type: application/json")
    return body


def _name_taken(name: str, except_id: str | None = None) -> bool:
    query = select(Schedule.id).where(Schedule.team_id == team_id(), Schedule.name == name)
    if except_id:
        query = query.where(Schedule.id != except_id)
    return db().scalar(query) is not None


@bp.post("")
@documented({201: answers.Schedule}, (400, 403, 409, 422), tag="schedules", json=ScheduleCreate)
@requires("member")
def create() -> tuple[Response, int]:
    """Define a periodic retrain with champion/challenger promotion."""
    values = _checked(ScheduleCreate.model_validate(_body()))
    if _name_taken(values["name"]):
        raise ApiError(409, "conflict", f"schedule {values['name']} already exists", "name")
    now = time.time()
    row = Schedule(
        team_id=team_id(), created_by=caller().id, created_at=now, updated_at=now, **values
    )
    session = db()
    session.add(row)
    session.commit()
    return jsonify(schedule_json(row)), 201


@bp.get("")
@documented({200: answers.SchedulePage}, (422,), tag="schedules", query=PageQuery)
def list_schedules() -> Response:
    """The team's schedules, newest first."""
    limit, cursor = page_params()
    query = select(Schedule).where(Schedule.team_id == team_id())
    if cursor:
        query = query.where(Schedule.id < cursor)
    rows = db().scalars(query.order_by(Schedule.id.desc()).limit(limit + 1)).all()
    return jsonify(paged([schedule_json(s) for s in rows], limit))


@bp.get("/<schedule_id>")
@documented({200: answers.Schedule}, (404,), tag="schedules")
def show(schedule_id: str) -> Response:
    """One schedule, with its next due time."""
    return jsonify(schedule_json(owned_schedule(schedule_id)))


@bp.patch("/<schedule_id>")
@documented(
    {200: answers.Schedule}, (400, 403, 404, 409, 422), tag="schedules", json=ScheduleUpdate
)
@requires("member")
def update(schedule_id: str) -> Response:
    """Change any of a schedule's fields; the result is checked as a whole."""
    row = owned_schedule(schedule_id)
    patch = ScheduleUpdate.model_validate(_body()).model_dump(exclude_unset=True)
    current: dict[str, Any] = {
        "name": row.name,
        "trigger": row.trigger,
        "cron": row.cron,
        "model_name": row.model_name,
        "dataset_name": row.dataset_name,
        "base": row.base,
        "base_model": row.base_model,
        "hyperparameters": row.hyperparameters,
        "evaluation_dataset": row.evaluation_dataset,
        "promotion": {"metric": row.metric, "min_margin": row.min_margin},
        "priority": row.priority,
        "resources": {"gpus": row.gpus},
        "enabled": row.enabled,
    }
    values = _checked(ScheduleCreate.model_validate({**current, **patch}))
    now = time.time()
    # A new timetable (or a resumed schedule) starts from now: due times it would have
    # had in the past are not fired retroactively.
    if (
        values["cron"] != row.cron
        or values["trigger"] != row.trigger
        or (values["enabled"] and not row.enabled)
    ):
        row.last_fire_time = max(row.last_fire_time or 0.0, now)
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = now
    db().commit()
    return jsonify(schedule_json(row))


@bp.delete("/<schedule_id>")
@documented({200: answers.Removed}, (403, 404), tag="schedules")
@requires("member")
def remove(schedule_id: str) -> tuple[Response, int]:
    """Delete a schedule and its runs; jobs already submitted finish on their own."""
    row = owned_schedule(schedule_id)
    session = db()
    # Jobs already submitted finish on their own; their runs go with the schedule.
    session.execute(delete(ScheduleRun).where(ScheduleRun.schedule_id == row.id))
    session.delete(row)
    session.commit()
    return jsonify({"id": schedule_id, "deleted": True}), 200


@bp.get("/<schedule_id>/runs")
@documented({200: answers.RunPage}, (404, 422), tag="schedules", query=PageQuery)
def runs(schedule_id: str) -> Response:
    """A schedule's runs, newest first: what each trained, scored and decided."""
    owned_schedule(schedule_id)
    limit, cursor = page_params()
    query = select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id)
    if cursor:
        query = query.where(ScheduleRun.id < cursor)
    rows = db().scalars(query.order_by(ScheduleRun.id.desc()).limit(limit + 1)).all()
    return jsonify(paged([run_json(r) for r in rows], limit))


@bp.post("/<schedule_id>/run")
@documented({201: answers.ScheduleRun}, (403, 404, 409), tag="schedules")
@requires("member")
def run_now(schedule_id: str) -> tuple[Response, int]:
    """Fire once now, outside the timetable (the same path as a due time)."""
    from scheduler.admission_requests import request_admission

    row = owned_schedule(schedule_id)
    ident = row.id
    db().rollback()
    run_id = fire(platform(), ident, time.time(), trigger="manual")
    if run_id is None:
        raise ApiError(409, "conflict", "a run for this instant already exists; retry", "schedule")
    request_admission(platform())
    found = db().get(ScheduleRun, run_id)
    assert found is not None
    return jsonify(run_json(found)), 201
