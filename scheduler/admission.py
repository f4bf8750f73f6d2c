"""The admission pass: load the pool from SQL, plan, apply through the state machine.

The plan itself is ``scheduler.planner.plan`` (plain data in, decisions out). This
module commits the decisions first and publishes afterwards: a job exists once its
row is committed, and a message lost on the way is recovered from SQL.
"""

from __future__ import annotations

import time
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scheduler.planner import (
    DEFAULT_RUNTIME_S,
    PRIORITIES,
    AdmissionPlan,
    PendingJob,
    Placement,
    Policy,
    RunningJob,
    TeamState,
    WorkerCapacity,
    plan,
)
from scheduler.usage import decayed_usage, gpu_hours_by_team, period_start
from storage.db import lock_scheduler
from storage.models import Checkpoint, Job, Team, Worker
from storage.states import HOLDING_SLOTS, JobState, transition
from tunepool.settings import Settings

__all__ = ["PRIORITIES", "Placement", "Publish", "admit", "load_and_plan"]

S = JobState


class Publish(Protocol):
    """publish(job_id, queue, job_type, team=""): the job type picks the Celery task."""

    def __call__(self, job_id: str, queue: str, job_type: str, team: str = "") -> None: ...


def _runtime_estimate(job: Job) -> float:
    return float(job.spec.get("estimated_runtime_s") or DEFAULT_RUNTIME_S)


def load_and_plan(session: Session, settings: Settings, now: float) -> AdmissionPlan:
    pending_rows = session.scalars(select(Job).where(Job.state == S.PENDING.value)).all()
    pending = [
        PendingJob(
            j.id,
            j.team_id,
            j.priority,
            j.slots,
            j.created_at,
            _runtime_estimate(j),
            j.type,
            j.reason_code,
        )
        for j in pending_rows
    ]
    holding = session.scalars(
        select(Job).where(
            Job.state.in_([s.value for s in HOLDING_SLOTS]), Job.worker_name.is_not(None)
        )
    ).all()
    newest_checkpoint = dict(
        session.execute(
            select(Checkpoint.job_id, func.max(Checkpoint.created_at))
            .where(Checkpoint.job_id.in_([j.id for j in holding]))
            .group_by(Checkpoint.job_id)
        ).all()
    )
    running = [
        RunningJob(
            j.id,
            j.team_id,
            j.priority,
            j.slots,
            j.worker_name or "",
            tuple(j.gpu_indices or ()),
            now + float(j.progress.get("eta_s") or _runtime_estimate(j)),
            j.borrowed,
            float(newest_checkpoint.get(j.id) or j.started_at or now),
            j.state in (S.PREEMPTING.value, S.CANCELLING.value),
        )
        for j in holding
    ]
    usage = decayed_usage(session, settings.fair_share_half_life_s, now)
    spent = gpu_hours_by_team(session, period_start(settings.budget_period_days, now), now)
    teams = {
        t.id: TeamState(
            t.id,
            t.weight,
            t.max_gpus,
            t.can_borrow,
            usage.get(t.id, 0.0),
            t.gpu_hours_budget is not None and spent.get(t.id, 0.0) >= t.gpu_hours_budget,
            t.queue_state == "held",
        )
        for t in session.scalars(select(Team))
    }
    workers = [
        WorkerCapacity(w.name, w.queue, w.slots, tuple(g["index"] for g in w.gpus) or ())
        for w in session.scalars(
            select(Worker).where(Worker.state == "alive").order_by(Worker.name)
        )
    ]
    policy = Policy(starvation_s=settings.starvation_s, preemption=settings.preemption)
    return plan(pending, running, teams, workers, now, policy)


def admit(
    session: Session, publish: Publish, settings: Settings, now: float | None = None
) -> list[Placement]:
    """One admission pass. Commits; then publishes each placed job to its worker's queue."""
    now = now or time.time()
    lock_scheduler(session)
    decided = load_and_plan(session, settings, now)
    placed: list[Placement] = []
    for p in decided.placements:
        if transition(
            session,
            p.job_id,
            S.QUEUED,
            reason=f"admitted to worker {p.worker} (GPUs {','.join(map(str, p.gpu_indices))})"
            + (" on borrowed GPUs" if p.borrowed else ""),
            expect={S.PENDING},
            values={
                "worker_name": p.worker,
                "queued_at": now,
                "gpu_indices": list(p.gpu_indices),
                "borrowed": p.borrowed,
                "reason_code": None,
                "reason": None,
                "queue_position": None,
                "estimated_start": None,
            },
            data={"worker": p.worker, "gpu_indices": list(p.gpu_indices), "borrowed": p.borrowed},
        ):
            placed.append(p)
    for pre in decided.preemptions:
        transition(
            session,
            pre.victim_id,
            S.PREEMPTING,
            reason=pre.reason,
            expect={S.RUNNING},
            data={"for_job": pre.for_job_id},
        )
    for job_id, wait in decided.waits.items():
        job = session.get(Job, job_id)
        if job is None or job.state != S.PENDING.value:
            continue
        job.reason_code, job.reason = wait.reason_code, wait.reason
        job.queue_position, job.estimated_start = wait.position, wait.estimated_start
    labels = (
        dict(
            session.execute(
                select(Job.id, Team.name)
                .join(Team, Team.id == Job.team_id)
                .where(Job.id.in_([p.job_id for p in placed]))
            ).all()
        )
        if placed
        else {}
    )
    session.commit()
    for p in placed:
        publish(p.job_id, p.queue, p.kind, labels.get(p.job_id, ""))
    return placed
