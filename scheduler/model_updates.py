"""Periodic model updates: fire due schedules once, then carry each run to its evaluation.

The beat tick (``MODEL_UPDATES_TASK``, once a minute) does two things:

1. For every enabled schedule whose newest due time (cron, UTC) or newest dataset
   version (``trigger: new_dataset``) has not been handled, insert a ``ScheduleRun``
   unique on ``(schedule_id, fire_time)`` and flush it *before* building the job. A
   second beat or a retried tick computing the same due time hits the constraint and
   its transaction, job included, rolls back: one due time, one run, one job. The run
   and its finetune job commit together, so a crash leaves neither half.
2. For runs whose retrain job finished: on success, submit an ``evaluate`` job (a
   worker scores candidate and champion on the same set and decides, see
   ``worker.engines.evaluate``); on failure or cancel, record the run as ``failed``.

Jobs are made by the job factory (``storage.job_factory``), as a submit's are: what
it refuses (base model, draining queue, priority limit, never fits) fails the run,
for the retrain and the evaluate job alike; otherwise the job waits for admission
under its team's quotas like any other.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.cron import latest_due
from storage import job_factory
from storage.ids import new_id
from storage.job_factory import JobOrder
from storage.models import Dataset, Job, ModelVersion
from storage.platform import Platform
from storage.priorities import priority_name
from storage.refusals import Refusal
from storage.registry import resolve
from storage.schedules import RunOutcome, RunState, Schedule, ScheduleRun, move_run
from storage.states import JobState

log = logging.getLogger(__name__)
S = JobState
FINISHED_BADLY = {S.FAILED.value, S.CANCELLED.value}


class Refused(Exception):
    """The retrain could not be submitted; the run is recorded as failed with this reason."""


def run_model_updates(platform: Platform, now: float | None = None) -> dict[str, list[str]]:
    """The tick: fire what is due, advance finished runs, then let admission place jobs."""
    now = time.time() if now is None else now
    fired = fire_due(platform, now)
    advanced = advance_runs(platform, now)
    if fired or advanced:
        from scheduler.admission_requests import request_admission

        request_admission(platform)
    return {"fired": fired, "advanced": advanced}


def newest_dataset(session: Session, team_id: str, name: str) -> Dataset | None:
    """A dataset's versions are its uploads under one name; the newest is the latest created."""
    return session.scalar(
        select(Dataset)
        .where(Dataset.team_id == team_id, Dataset.name == name)
        .order_by(Dataset.created_at.desc(), Dataset.id.desc())
        .limit(1)
    )


def due_time(session: Session, schedule: Schedule, now: float) -> float | None:
    """The fire time this schedule owes at ``now``, or None.

    Only the newest due time fires: after a beat outage a schedule runs once, not once
    per missed minute. Due times before the schedule existed never fire.
    """
    if schedule.trigger == "new_dataset":
        newest = newest_dataset(session, schedule.team_id, schedule.dataset_name)
        if newest is None:
            return None
        fire_time = newest.created_at
    else:
        assert schedule.cron is not None
        fire_time = latest_due(schedule.cron, now)
    if fire_time <= schedule.created_at:
        return None
    if schedule.last_fire_time is not None and fire_time <= schedule.last_fire_time:
        return None
    return fire_time


def fire_due(platform: Platform, now: float) -> list[str]:
    with platform.sessions() as session:
        schedules = session.scalars(select(Schedule).where(Schedule.enabled.is_(True))).all()
        due = [(s.id, t) for s in schedules if (t := due_time(session, s, now)) is not None]
    fired = []
    for schedule_id, fire_time in due:
        run_id = fire(platform, schedule_id, fire_time, now=now)
        if run_id is not None:
            fired.append(run_id)
    return fired


def fire(
    platform: Platform,
    schedule_id: str,
    fire_time: float,
    *,
    now: float | None = None,
    trigger: str | None = None,
) -> str | None:
    """One run for (schedule, fire_time) and its retrain job; None if it already exists."""
    now = time.time() if now is None else now
    with platform.sessions() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None:
            return None
        run = ScheduleRun(
            id=new_id("run"),
            schedule_id=schedule.id,
            team_id=schedule.team_id,
            fire_time=fire_time,
            trigger=trigger or schedule.trigger,
            evaluation_dataset=schedule.evaluation_dataset,
            metric=schedule.metric,
            min_margin=schedule.min_margin,
            created_at=now,
        )
        session.add(run)
        try:
            # The claim on this due time: flushed before anything else is built.
            session.flush()
        except IntegrityError:
            session.rollback()
            return None
        schedule.last_fire_time = max(schedule.last_fire_time or 0.0, fire_time)
        try:
            job = _retrain_job(session, platform, schedule, run, now)
        except Refused as exc:
            move_run(
                session,
                run.id,
                RunState.SUBMITTING,
                RunState.DECIDED,
                outcome=RunOutcome.FAILED,
                reason=str(exc),
                decided_at=now,
            )
            log.warning("schedule %s: run %s refused: %s", schedule.id, run.id, exc)
        else:
            move_run(session, run.id, RunState.SUBMITTING, RunState.TRAINING, job_id=job.id)
        try:
            session.commit()
        except IntegrityError:
            # PostgreSQL may report the duplicate only at commit under concurrency.
            session.rollback()
            return None
        log.info("schedule %s fired for %s: run %s", schedule.id, _iso(fire_time), run.id)
        return run.id


def _base_model(session: Session, schedule: Schedule) -> str:
    """The production version pinned as ``name:version`` (so the run's lineage is exact)."""
    if schedule.base == "production":
        try:
            champion = resolve(session, schedule.team_id, f"{schedule.model_name}@production")
        except (LookupError, ValueError):
            return schedule.base_model
        return f"{champion.name}:{champion.version}"
    return schedule.base_model


def _retrain_job(
    session: Session, platform: Platform, schedule: Schedule, run: ScheduleRun, now: float
) -> Job:
    dataset = newest_dataset(session, schedule.team_id, schedule.dataset_name)
    if dataset is None:
        raise Refused(f"no dataset named {schedule.dataset_name}")
    if dataset.task != schedule.task:
        raise Refused(f"dataset {dataset.id} is a {dataset.task} dataset, not {schedule.task}")
    base = _base_model(session, schedule)
    # Checked again when it fires: the allow-list, the team's models and limits may
    # have changed since the schedule was made.
    job = job_factory.create(
        session,
        platform.settings,
        JobOrder(
            team_id=schedule.team_id,
            type="finetune",
            task=schedule.task,
            # The same shape as a submitted JobCreate, plus where it came from.
            spec={
                "type": "finetune",
                "task": schedule.task,
                "base_model": base,
                "train_dataset": dataset.id,
                "validation_dataset": None,
                "hyperparameters": dict(schedule.hyperparameters or {}),
                "model_name": schedule.model_name,
                "schedule_id": schedule.id,
                "schedule_run": run.id,
            },
            priority=schedule.priority,
            slots=schedule.gpus,
            model_name=schedule.model_name,
            base_model=base,
        ),
        accepted=f"accepted: schedule {schedule.name} due {_iso(run.fire_time)}",
        now=now,
    )
    if isinstance(job, Refusal):
        raise Refused(job.message)
    run.dataset_id, run.base_model = dataset.id, base
    return job


def advance_runs(platform: Platform, now: float | None = None) -> list[str]:
    """Runs whose job finished move on: to evaluation, or to ``failed``."""
    now = time.time() if now is None else now
    with platform.sessions() as session:
        r = ScheduleRun
        runs = session.execute(
            select(r.id, r.state, r.job_id, r.evaluate_job_id).where(
                r.state.in_((RunState.TRAINING.value, RunState.EVALUATING.value))
            )
        ).all()
    moved = []
    for run_id, state, job_id, evaluate_job_id in runs:
        with platform.sessions() as session:
            if state == RunState.TRAINING:
                done = _after_training(session, platform, run_id, job_id, now)
            else:
                done = _after_evaluation(session, run_id, evaluate_job_id, now)
            if done:
                session.commit()
                moved.append(run_id)
    return moved


def _after_training(
    session: Session, platform: Platform, run_id: str, job_id: str | None, now: float
) -> bool:
    job = session.get(Job, job_id) if job_id else None
    if job is None:
        return move_run(
            session,
            run_id,
            RunState.TRAINING,
            RunState.DECIDED,
            outcome=RunOutcome.FAILED,
            reason="retrain job gone",
            decided_at=now,
        )
    if job.state in FINISHED_BADLY:
        return move_run(
            session,
            run_id,
            RunState.TRAINING,
            RunState.DECIDED,
            outcome=RunOutcome.FAILED,
            reason=f"retrain job {job.id} {job.state}: {(job.error or job.reason or '')[:400]}",
            decided_at=now,
        )
    if job.state != S.SUCCEEDED.value:
        return False
    candidate = session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
    if candidate is None:
        return move_run(
            session,
            run_id,
            RunState.TRAINING,
            RunState.DECIDED,
            outcome=RunOutcome.FAILED,
            reason=f"retrain job {job.id} succeeded without a model version",
            decided_at=now,
        )
    run = session.get(ScheduleRun, run_id)
    assert run is not None
    evaluate = job_factory.create(
        session,
        platform.settings,
        JobOrder(
            team_id=job.team_id,
            type="evaluate",
            task=candidate.task,
            spec={
                "schedule_run": run_id,
                "model": f"{candidate.name}:{candidate.version}",
                "model_version_id": candidate.id,
                "model_name": candidate.name,
                "model_version": candidate.version,
                "evaluation_dataset": run.evaluation_dataset,
                "metric": run.metric,
                "min_margin": run.min_margin,
            },
            priority=priority_name(job.priority),
            model_name=candidate.name,
        ),
        accepted=f"evaluate run {run_id}",
        now=now,
    )
    if isinstance(evaluate, Refusal):
        return move_run(
            session,
            run_id,
            RunState.TRAINING,
            RunState.DECIDED,
            outcome=RunOutcome.FAILED,
            reason=f"evaluate job refused: {evaluate.message}"[:500],
            decided_at=now,
        )
    if not move_run(
        session,
        run_id,
        RunState.TRAINING,
        RunState.EVALUATING,
        evaluate_job_id=evaluate.id,
        candidate_version=candidate.version,
    ):
        # Another tick moved the run first: its evaluate job stands, this one goes.
        session.rollback()
        return False
    return True


def _after_evaluation(
    session: Session, run_id: str, evaluate_job_id: str | None, now: float
) -> bool:
    job = session.get(Job, evaluate_job_id) if evaluate_job_id else None
    if job is not None and job.state not in FINISHED_BADLY:
        # Running, or succeeded: the worker recorded the decision with the job.
        return False
    what = f"evaluate job {job.id} {job.state}: {job.error or ''}" if job else "evaluate job gone"
    return move_run(
        session,
        run_id,
        RunState.EVALUATING,
        RunState.DECIDED,
        outcome=RunOutcome.FAILED,
        reason=what[:500],
        decided_at=now,
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
