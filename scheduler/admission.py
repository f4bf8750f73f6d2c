"""The admission pass: load the pool from SQL, plan, apply through the state machine.

The plan itself is ``scheduler.planner.plan`` (plain data in, decisions out). This
module commits the decisions first and publishes afterwards: a job exists once its
row is committed, and a message lost on the way is recovered from SQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import Text, bindparam, case, func, select, type_coerce, update
from sqlalchemy.exc import DBAPIError
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
from scheduler.wait_board import Place
from storage import finite_json
from storage.db import json_readable, lock_scheduler
from storage.models import Checkpoint, Job, JobEvent, Team, Worker, table_of
from storage.states import HOLDING_SLOTS, JobState, set_aside, transition
from storage.worker_state import WorkerState
from tunepool.quoting import excerpt
from tunepool.settings import Settings

__all__ = ["PRIORITIES", "Placement", "Publish", "admit"]

S = JobState
log = logging.getLogger(__name__)


class Publish(Protocol):
    """publish(job_id, queue, job_type, team=""): the job type picks the Celery task."""

    def __call__(self, job_id: str, queue: str, job_type: str, team: str = "") -> None: ...


def _runtime_estimate(job: Job) -> float:
    try:
        return runtime_of(job.spec.get("estimated_runtime_s")) or DEFAULT_RUNTIME_S
    except ValueError:  # admitted before its estimate was checked: no estimate, then
        return DEFAULT_RUNTIME_S


def runtime_of(value: object) -> float | None:
    """A spec's runtime estimate as seconds; None when absent (0 too: "no estimate").

    ValueError for anything else that is not a finite positive number of seconds.
    """
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"estimated_runtime_s is {type(value).__name__}, not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"estimated_runtime_s {value} is not a positive number of seconds")
    return float(value)


def _estimated_end(job: Job, now: float, startup: Mapping[str, float]) -> float:
    """The run's own ETA once it reports one (counted from when it did); else its start
    plus the submitter's estimate (``estimated_runtime_s``), so a job that ran half its
    estimate is half done. A job not started yet starts after its worker's measured
    start-up time."""
    eta = job.progress.get("eta_s")
    if eta:
        # Counted from when it was reported: a run that went quiet (evaluating, saving)
        # still ends when it said, not always another `eta_s` from now.
        return max(now, float(job.progress.get("at") or now) + float(eta))
    runtime = _runtime_estimate(job)
    started = job.started_at or now + startup.get(job.worker_name or "", 0.0)
    return max(now, started + runtime)


# Why each pending job waited after the last pass, to write only what a pass changes.
Reasons = dict[str, tuple[str | None, str | None]]
# Pending jobs whose row the pass could not read: job id -> what is wrong with it.
Unreadable = dict[str, str]
_ROW = (Job.id, Job.team_id, Job.priority, Job.slots, Job.created_at)
_REASONS = (Job.type, Job.reason_code, Job.reason)


def _load_pending(session: Session) -> tuple[list[PendingJob], Reasons, Unreadable]:
    """The pending jobs, why each waited, and those whose row cannot be read.

    Plain rows, not ORM objects, and only the spec's runtime estimate: this runs over
    the whole queue on every pass. One spec the database cannot read (SQLite keeps any
    text in a JSON column) fails that statement for every team's jobs; then, and only
    then, the queue is read again checking each row, and the unreadable ones are
    named. The check costs as much as the read itself, so it is not paid every pass.
    """
    try:
        with session.begin_nested():
            rows = session.execute(
                select(*_ROW, Job.spec["estimated_runtime_s"].as_float(), *_REASONS).where(
                    Job.state == S.PENDING.value
                )
            ).all()
            pending = [
                PendingJob(
                    r[0], r[1], r[2], r[3], r[4], runtime_of(r[5]) or DEFAULT_RUNTIME_S, r[6], r[7]
                )
                for r in rows
            ]
    except (DBAPIError, ValueError, TypeError):
        return _load_pending_checked(session)
    return pending, {r[0]: (r[7], r[8]) for r in rows}, {}


def _load_pending_checked(session: Session) -> tuple[list[PendingJob], Reasons, Unreadable]:
    """`_load_pending`, reading each spec only where it is valid JSON and checking it."""
    readable = json_readable(session, Job.spec)
    rows = session.execute(
        select(
            *_ROW,
            readable,
            case((readable, Job.spec["estimated_runtime_s"]), else_=None),
            *_REASONS,
        ).where(Job.state == S.PENDING.value)
    ).all()
    pending: list[PendingJob] = []
    unreadable: Unreadable = {}
    for r in rows:
        if not r[5]:
            unreadable[r[0]] = "its spec is not valid JSON"
            continue
        try:
            runtime = runtime_of(r[6])
        except ValueError as exc:
            unreadable[r[0]] = str(exc)
            continue
        pending.append(
            PendingJob(r[0], r[1], r[2], r[3], r[4], runtime or DEFAULT_RUNTIME_S, r[7], r[8])
        )
    return pending, {r[0]: (r[8], r[9]) for r in rows}, unreadable


def _set_aside(session: Session, unreadable: Unreadable) -> None:
    """Fail each job whose row cannot be read, keeping what can be read of its spec."""
    raw = dict(
        session.execute(
            select(Job.id, type_coerce(Job.spec, Text)).where(Job.id.in_(list(unreadable)))
        ).all()
    )
    for job_id, problem in unreadable.items():
        log.error("admission: job %s set aside: %s", job_id, problem)
        set_aside(session, job_id, problem, readable_spec(raw.get(job_id)))


def readable_spec(raw: object) -> dict[str, Any]:
    """What can be kept of a spec: Python's lenient reading of its text made strict (a
    NaN becomes null), or else an excerpt of the text. (PostgreSQL's driver hands over
    the document already parsed.)"""
    value = raw
    if isinstance(raw, str | bytes):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
    if isinstance(value, dict):
        kept: dict[str, Any] = json.loads(finite_json.dumps(value))
        return kept
    return {"unreadable": excerpt(str(raw or ""))}


def _avoiding_last_workers(session: Session, pending: list[PendingJob]) -> list[PendingJob]:
    """Each job back from a worker it did not finish on, marked to avoid that worker."""
    came_back = _last_workers(session, [j.id for j in pending if j.previous_reason in _CAME_BACK])
    if not came_back:
        return pending
    return [
        dataclasses.replace(j, avoid_worker=came_back[j.id]) if j.id in came_back else j
        for j in pending
    ]


# Why a job is back in the queue without having finished where it was placed.
_CAME_BACK = ("lease_expired", "worker_lost")


def _last_workers(session: Session, job_ids: list[str]) -> dict[str, str]:
    """The worker each job was last placed on (its newest ``queued`` event says): few
    jobs, only those just returned by the reaper, so the pass stays one query for most."""
    if not job_ids:
        return {}
    placed = session.execute(
        select(JobEvent.job_id, JobEvent.data)
        .where(JobEvent.job_id.in_(job_ids), JobEvent.new_state == S.QUEUED.value)
        .order_by(JobEvent.id)
    ).all()
    return {job_id: str(data["worker"]) for job_id, data in placed if data and data.get("worker")}


def _plan(
    session: Session,
    settings: Settings,
    now: float,
    pending: list[PendingJob],
    startup: Mapping[str, float],
) -> AdmissionPlan:
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
            _estimated_end(j, now, startup),
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
            PRIORITIES.get(t.max_priority, PRIORITIES["high"]),
        )
        for t in session.scalars(select(Team))
    }
    # Only workers that beat lately: one that went silent (frozen, partitioned) would
    # never claim what it is given, and its jobs' leases are about to be reaped. It
    # counts again from its next heartbeat; losing it (mark_lost) comes later.
    fresh = now - settings.worker_stale_after_s
    workers = [
        WorkerCapacity(
            w.name,
            w.queue,
            w.slots,
            tuple(g["index"] for g in w.gpus) or (),
            startup.get(w.name, 0.0),
        )
        for w in session.scalars(
            select(Worker)
            .where(Worker.state == WorkerState.ALIVE.value, Worker.heartbeat_at >= fresh)
            .order_by(Worker.name)
        )
    ]
    policy = Policy(starvation_s=settings.starvation_s, preemption=settings.preemption)
    return plan(pending, running, teams, workers, now, policy)


def admit(
    session: Session,
    publish: Publish,
    settings: Settings,
    now: float | None = None,
    post: Callable[[dict[str, Place]], None] | None = None,
    startup: Mapping[str, float] | None = None,
) -> list[Placement]:
    """One admission pass. Commits; then publishes each placed job to its worker's queue.

    ``post`` receives every waiting job's position and estimated start (the wait board);
    it is called while the pass still holds the scheduler lock, so boards arrive in the
    order of the passes that made them. ``startup``: each worker's measured seconds from
    admission to a job's first step (tunepool.startup_times), counted in those estimates.
    """
    now = now or time.time()
    lock_scheduler(session)
    pending, reasons, unreadable = _load_pending(session)
    pending = _avoiding_last_workers(session, pending)
    if unreadable:
        _set_aside(session, unreadable)
    decided = _plan(session, settings, now, pending, startup or {})
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
            },
            data={"worker": p.worker, "gpu_indices": list(p.gpu_indices), "borrowed": p.borrowed},
        ):
            placed.append(p)
    names: dict[str, str] = {}
    if decided.preemptions:
        names = dict(
            session.execute(
                select(Team.id, Team.name).where(
                    Team.id.in_({p.for_team for p in decided.preemptions})
                )
            ).all()
        )
    for pre in decided.preemptions:
        why = pre.describe(names.get(pre.for_team))
        transition(
            session,
            pre.victim_id,
            S.PREEMPTING,
            reason=why,
            expect={S.RUNNING},
            # Kept on the row: the runner's release repeats it, and it is what the job
            # shows while it yields and then waits.
            values={"reason_code": pre.code, "reason": why},
            data={"for_job": pre.for_job_id, "for_team": pre.for_team, "why": pre.code},
        )
    _record_reasons(session, decided, reasons)
    if post is not None:
        post({job_id: Place(w.position, w.estimated_start) for job_id, w in decided.waits.items()})
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


def _record_reasons(session: Session, decided: AdmissionPlan, before: Reasons) -> None:
    """Write a waiting job's reason only when this pass changed it: at a deep queue most
    reasons stay the same from pass to pass, and each write is a row update."""
    changed = [
        {"b_id": job_id, "b_code": w.reason_code, "b_text": w.reason}
        for job_id, w in decided.waits.items()
        if before.get(job_id, (None, None)) != (w.reason_code, w.reason)
    ]
    if changed:
        # One executemany on the table (Core): the ORM's bulk path wants no WHERE clause.
        # A job another process moved meanwhile keeps its own reason; that condition sits
        # in the SET, not the WHERE: with `state = $2` in the WHERE, PostgreSQL's cached
        # generic plan for the prepared statement (planned while the table was small) read
        # every pending row through ix_jobs_state_priority per update. In a 10,000-job
        # burst that was 115 million index tuples and more CPU than the API's own SQL.
        session.connection().execute(_RECORD_REASON, changed)


_JOBS = table_of(Job).c
_STILL_PENDING = _JOBS.state == S.PENDING.value
_RECORD_REASON = (
    update(table_of(Job))
    .where(_JOBS.id == bindparam("b_id"))
    .values(
        reason_code=case((_STILL_PENDING, bindparam("b_code")), else_=_JOBS.reason_code),
        reason=case((_STILL_PENDING, bindparam("b_text")), else_=_JOBS.reason),
    )
)
