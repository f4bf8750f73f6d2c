"""/v1/jobs: submit (validated, then admitted), list, show, events, cancel."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import responses
from api.admission_checks import check_order
from api.auth import requires
from api.commit_answer import write_answer
from api.context import db, platform, team_id
from api.datasets import owned_dataset, owned_dataset_task
from api.errors import ApiError, invalid, not_found
from api.model_jobs import MODEL_JOB_TYPES, submit_model_job
from api.openapi import documented
from api.paging import MAX_ROW_ID, FollowQuery, PageQuery, page_params, paged, query_int
from api.schemas import JobCreate, JobSubmission
from api.times import rfc3339, with_moment
from api.training_checks import check_hyperparameters, check_validation_labels, training_report
from scheduler.admission_requests import request_admission
from scheduler.wait_board import Place, read_board
from storage.db import held_writes
from storage.job_factory import Checked, JobOrder, write
from storage.models import Job, JobEvent
from storage.priorities import PRIORITIES
from storage.states import JobState, transition
from tunepool.redis_client import redis_client

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
S = JobState


class JobListQuery(PageQuery):
    state: JobState | None = Field(None, description="only jobs in this state")


def waiting_places(jobs: Iterable[Job]) -> dict[str, Place]:
    """Positions and estimated starts of the pending ones among ``jobs`` (the wait board)."""
    waiting = [j.id for j in jobs if j.state == S.PENDING.value]
    if not waiting:
        return {}
    return read_board(redis_client(platform().settings.redis_url), waiting)


def job_json(job: Job, places: Mapping[str, Place] | None = None) -> dict[str, Any]:
    """``places``: from ``waiting_places`` when rendering many jobs (one Redis read)."""
    place = (waiting_places([job]) if places is None else places).get(job.id)
    return {
        "id": job.id,
        "type": job.type,
        "task": job.task,
        "state": job.state,
        "reason_code": job.reason_code,
        "reason": job.reason,
        "queue_position": place.position if place else None,
        "estimated_start": rfc3339(place.estimated_start) if place else None,
        "priority": next((k for k, v in PRIORITIES.items() if v == job.priority), "normal"),
        "resources": {"gpus": job.slots},
        "worker": job.worker_name,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "model_name": job.model_name,
        "model_version_id": job.model_version_id,
        "progress": with_moment(job.progress),
        "metrics": job.metrics,
        "error": job.error,
        "spec": job.spec,
        "created_at": rfc3339(job.created_at),
        "queued_at": rfc3339(job.queued_at),
        "started_at": rfc3339(job.started_at),
        "finished_at": rfc3339(job.finished_at),
    }


def event_json(e: JobEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": rfc3339(e.at),
        "kind": e.kind,
        "old_state": e.old_state,
        "new_state": e.new_state,
        "reason": e.reason,
        "data": e.data,
    }


def owned_job(job_id: str) -> Job:
    job = db().get(Job, job_id)
    if job is None or job.team_id != team_id():
        raise not_found("job", job_id)
    return job


@bp.post("")
@documented(
    {201: responses.Job, 200: responses.JobCheck},
    (400, 403, 409, 422, 500, 504),
    tag="jobs",
    json=JobSubmission,
)
@requires("member")
def submit() -> tuple[Response, int]:
    """Submit a job, or check one without creating it (``validate_only``).

    A fine-tune (``type: finetune``, the default), a batch inference or a compression of
    a registered model. 201 with the job; 200 with the check's report for
    ``validate_only``.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "send a JSON object with Content-Type: application/json")
    if body.get("type") in MODEL_JOB_TYPES:
        return submit_model_job(body)
    spec = JobCreate.model_validate(body)
    checked = checked_finetune(spec)
    if spec.validate_only:
        train = owned_dataset(spec.train_dataset)
        report = training_report(
            spec.task,
            train,
            owned_dataset(spec.validation_dataset) if spec.validation_dataset else None,
            spec.hyperparameters,
            # A name: the serving worker finds an allow-listed model's files itself.
            spec.base_model,
        )
        answer = {"valid": True, "train_dataset": train.stats, "report": report}
        if "runtime_estimate" in checked.order.spec:  # a chat fine-tune's dry run
            answer["estimate"] = checked.order.spec["runtime_estimate"]
        return jsonify(answer), 200
    return accept(db(), checked)


def checked_finetune(spec: JobCreate, openai: Mapping[str, Any] | None = None) -> Checked:
    """A fine-tune's datasets and hyperparameters checked here, then the job factory's
    checks; ``openai``: what the OpenAI-compatible route keeps in the spec."""
    train_task = owned_dataset_task(spec.train_dataset, "train_dataset")
    if train_task != spec.task:
        raise invalid("train_dataset", f"is a {train_task} dataset; the job's task is {spec.task}")
    if spec.validation_dataset:
        validation = owned_dataset(spec.validation_dataset, "validation_dataset")
        if validation.task != spec.task:
            raise invalid("validation_dataset", f"is a {validation.task} dataset, not {spec.task}")
        # Only these checks read the datasets' statistics: the whole rows, then.
        check_validation_labels(owned_dataset(spec.train_dataset), validation)
    check_hyperparameters(spec.hyperparameters, spec.task)
    job_spec = spec.model_dump(exclude={"validate_only", "max_attempts", "priority", "resources"})
    if openai is not None:
        job_spec["openai"] = dict(openai)
    return check_order(
        JobOrder(
            team_id=team_id(),
            type=spec.type,
            task=spec.task,
            spec=job_spec,
            priority=spec.priority,
            slots=spec.resources.gpus,
            model_name=spec.model_name,
            max_attempts=spec.max_attempts,
            base_model=spec.base_model,
        )
    )


def accept(
    session: Session,
    checked: Checked,
    render: Callable[[Job], Any] | None = None,
    status: int = 201,
) -> tuple[Response, int]:
    """Write a checked order's job (the job factory), commit it with its answer, then ask
    for its admission. ``render``: the answer's body for the job (``job_json``)."""
    # No pass has seen the job yet, so it is not on the wait board: nothing to read there.
    first = render or (lambda job: job_json(job, places={}))
    # The job's row is flushed; its first event, the kept answer and the audit row go
    # after it as one statement.
    with held_writes(session):
        job = write(session, platform().settings, checked)
        answer = write_answer(session, lambda: first(job), status)
    session.commit()
    if request_admission(platform()):
        # A pass ran here (single-process setups), in a session of its own: answer with
        # what it decided (this session's copy of the job is the one it wrote).
        session.refresh(job)
        return jsonify((render or job_json)(job)), status
    return answer, status


@bp.get("")
@documented({200: responses.JobPage}, (422,), tag="jobs", query=JobListQuery)
def list_jobs() -> Response:
    """The team's jobs, newest first."""
    limit, cursor = page_params()
    query = select(Job).where(Job.team_id == team_id())
    state = request.args.get("state")
    if state:
        if state not in {s.value for s in S}:
            raise invalid("state", f"one of {', '.join(s.value for s in S)}")
        query = query.where(Job.state == state)
    if cursor:
        query = query.where(Job.id < cursor)
    rows = db().scalars(query.order_by(Job.id.desc()).limit(limit + 1)).all()
    places = waiting_places(rows)
    return jsonify(paged([job_json(j, places) for j in rows], limit))


@bp.get("/<job_id>")
@documented({200: responses.Job}, (404,), tag="jobs")
def show(job_id: str) -> Response:
    """One job: its state, why it waits, its place in the queue, progress and metrics."""
    return jsonify(job_json(owned_job(job_id)))


@bp.get("/<job_id>/events")
@documented(
    {200: responses.EventPage},
    (404, 422),
    tag="jobs",
    query=FollowQuery,
    media={200: ["text/event-stream"]},
)
def events(job_id: str) -> Response:
    """The job's history (states, progress, evaluations); ``follow=1`` streams it."""
    if request.args.get("follow") in ("1", "true"):
        from api.events_stream import resume_point, sse

        return sse(job_id, resume_point(), logs=False)
    owned_job(job_id)
    after = query_int("after", 0, 0, MAX_ROW_ID)
    limit, _ = page_params(default=200, maximum=1000)
    rows = (
        db()
        .scalars(
            select(JobEvent)
            # Log lines have their own endpoint (/logs); here they would drown the history.
            .where(JobEvent.job_id == job_id, JobEvent.id > after, JobEvent.kind != "log")
            .order_by(JobEvent.id)
            .limit(limit)
        )
        .all()
    )
    items = [event_json(e) for e in rows]
    return jsonify({"data": items, "next_after": items[-1]["id"] if items else after})


@bp.post("/<job_id>/cancel")
@documented({200: responses.Job}, (403, 404, 409), tag="jobs")
@requires("member")
def cancel(job_id: str) -> Response:
    """Cancel a job: at once if it has not started, else after its runner checkpoints."""
    job = owned_job(job_id)
    session = db()
    state = S(job.state)
    if state in (S.PENDING, S.QUEUED, S.VALIDATING):
        # Never started: cancelled at once; a queued message finds nothing to claim.
        moved = transition(
            session,
            job.id,
            S.CANCELLED,
            reason="cancelled by request",
            expect={state},
            values={"worker_name": None},
        )
    elif state in (S.RUNNING, S.PREEMPTING):
        moved = transition(
            session,
            job.id,
            S.CANCELLING,
            reason="cancel requested; the runner checkpoints and stops",
            expect={state},
        )
    elif state == S.CANCELLING:
        moved = True
    else:
        raise ApiError(409, "conflict", f"job {job.id} already {job.state}", "state")
    if not moved:
        raise ApiError(409, "conflict", f"job {job.id} changed state meanwhile; retry", "state")
    session.commit()
    session.refresh(job)
    return jsonify(job_json(job))
