"""Exactly one runner per job (DESIGN §3): claim, renew, end, and reap leases.

Celery over Redis delivers at least once; the claim is what makes a job run at
most once at a time. A worker claims with a conditional UPDATE (queued -> running
on this worker), renews the lease from the training loop, and a reaper returns
jobs whose lease ran out to ``pending`` so that they resume from a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from storage.attempts import TAKEN, AttemptOutcome
from storage.models import Checkpoint, Job, JobRun, Worker
from storage.states import LEASED, JobState, transition

S = JobState


@dataclass(frozen=True)
class Claim:
    job_id: str
    owner: str
    attempt: int
    lease_until: float


def claim(
    session: Session,
    job_id: str,
    worker_name: str,
    owner: str,
    ttl_s: float,
    pid: int | None = None,
) -> Claim | None:
    """Take the job if it is queued for this worker; None if someone else has it or it moved on."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.state != S.QUEUED.value or job.worker_name != worker_name:
        return None
    now = time.time()
    attempt = job.attempt + 1
    moved = transition(
        session,
        job_id,
        S.RUNNING,
        reason=f"claimed by {owner} (attempt {attempt})",
        expect={S.QUEUED},
        values={
            "lease_owner": owner,
            "lease_until": now + ttl_s,
            "attempt": attempt,
            "started_at": job.started_at or now,
            "reason_code": None,
            "reason": None,
        },
        data={"owner": owner, "attempt": attempt, "worker": worker_name},
        current=job,
    )
    if not moved:
        return None
    session.add(
        JobRun(
            job_id=job_id,
            attempt=attempt,
            worker_name=worker_name,
            lease_owner=owner,
            started_at=now,
            lease_until=now + ttl_s,
            slots=job.slots,
            pid=pid,
        )
    )
    return Claim(job_id=job_id, owner=owner, attempt=attempt, lease_until=now + ttl_s)


_LEASED = [s.value for s in LEASED]


def update_leased(
    session: Session, job_id: str, owner: str, values: Mapping[str, Any] | None = None
) -> bool:
    """Change the job's row only while ``owner`` holds its lease (a compare-and-set);
    False: the lease was lost (reaped, expired, or another runner holds it), nothing written.

    With no ``values`` the row is only locked for the rest of the transaction: a runner
    writes its job's events (progress, logs) after this answers True, so a stale runner
    (a process that was frozen past its lease) writes nothing (DESIGN §3).
    """
    changes = dict(values) if values else {"lease_owner": owner}
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.lease_owner == owner,
            Job.state.in_(_LEASED),
            # Expired is lost, reaped yet or not: the reaper may take it at any moment.
            Job.lease_until >= time.time(),
        )
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# How a run ends when its job was taken from it, rather than by the run itself.
TAKEN_OUTCOMES = tuple(sorted(o.value for o in TAKEN))


def run_not_taken(session: Session, job_id: str, owner: str) -> bool:
    """Whether ``owner``'s run may still write about the job: it runs, or it ended on its
    own (a failure's last log lines come after the lease is released), but it was not
    reaped. Locks the run's row for the rest of the transaction, so the reaper cannot
    end it between this answer and the caller's write."""
    result = session.execute(
        update(JobRun)
        .where(
            JobRun.job_id == job_id,
            JobRun.lease_owner == owner,
            or_(JobRun.outcome.is_(None), JobRun.outcome.not_in(TAKEN_OUTCOMES)),
        )
        .values(lease_owner=owner)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def renew_lease(session: Session, job_id: str, owner: str, ttl_s: float) -> bool:
    """Extend the lease; False means it was lost (reaped, expired, or another runner holds it)."""
    until = time.time() + ttl_s
    if not update_leased(session, job_id, owner, {"lease_until": until}):
        return False
    session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner)
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return True


def end_run(
    session: Session,
    job_id: str,
    owner: str,
    outcome: AttemptOutcome,
    ended_at: float | None = None,
) -> None:
    """The one writer of ``job_runs.outcome``: the run of ``owner`` ended so."""
    session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner, JobRun.ended_at.is_(None))
        .values(ended_at=ended_at or time.time(), outcome=AttemptOutcome(outcome).value)
        .execution_options(synchronize_session=False)
    )


def release(
    session: Session,
    job_id: str,
    owner: str,
    new: JobState,
    *,
    expect: set[JobState],
    reason: str,
    outcome: AttemptOutcome,
    waiting: tuple[str, str] | None = None,
) -> bool:
    """A runner that stopped on request hands its job on: the move, the cleared placement
    and lease, and the end of its run, together. ``waiting`` is the (reason_code, reason)
    a job going back to pending shows while it waits."""
    values: dict[str, str | None] = {"worker_name": None}
    if new == S.PENDING:
        code, text = waiting or ("admission", reason)
        values.update(lease_owner=None, lease_until=None, reason_code=code, reason=text)
    moved = transition(
        session, job_id, new, reason=reason, expect=expect, lease_owner=owner, values=values
    )
    if moved:
        end_run(session, job_id, owner, outcome)
    return moved


def set_start_step(session: Session, job_id: str, owner: str, step: int) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.job_id == job_id, JobRun.lease_owner == owner)
        .values(start_step=step)
        .execution_options(synchronize_session=False)
    )


def return_to_pending(session: Session, job: Job, *, reason: str, reason_code: str) -> bool:
    """Give a leased job back to admission, or fail it once its attempts are spent.

    A job being cancelled simply becomes cancelled: its runner is gone.
    """
    state = JobState(job.state)
    cleared = {"lease_owner": None, "lease_until": None, "worker_name": None}
    if state == S.CANCELLING:
        return transition(
            session,
            job.id,
            S.CANCELLED,
            reason=f"{reason}; cancel completed",
            expect={S.CANCELLING},
            values=cleared,
        )
    if job.attempt >= job.max_attempts:
        return transition(
            session,
            job.id,
            S.FAILED,
            reason=f"{reason}; gave up after {job.attempt} attempts "
            f"(max_attempts={job.max_attempts})",
            expect={state},
            values={**cleared, "error": reason},
        )
    return transition(
        session,
        job.id,
        S.PENDING,
        reason=f"{reason}; {_next_attempt(session, job.id)}",
        expect={state},
        values={**cleared, "reason_code": reason_code, "reason": reason},
    )


def _next_attempt(session: Session, job_id: str) -> str:
    """What the next attempt starts from: only training writes checkpoints, and a
    training run may be reaped before its first one."""
    step = session.scalar(select(func.max(Checkpoint.step)).where(Checkpoint.job_id == job_id))
    if step is None:
        return "no checkpoint, so the next attempt restarts from the beginning"
    return f"will resume from its checkpoint at step {step}"


def reap_expired(session: Session, now: float | None = None) -> list[str]:
    """Return every job whose lease ran out to pending (or failed/cancelled); the reaper tick."""
    now = now or time.time()
    leased = [s.value for s in LEASED]
    expired = session.scalars(
        select(Job).where(Job.state.in_(leased), Job.lease_until < now).order_by(Job.id)
    ).all()
    reaped: list[str] = []
    for job in expired:
        owner, until = job.lease_owner, job.lease_until
        if return_to_pending(
            session, job, reason=f"lease of {owner} expired", reason_code="lease_expired"
        ):
            if owner is not None:
                end_run(session, job.id, owner, AttemptOutcome.LEASE_EXPIRED, ended_at=until)
            reaped.append(job.id)
    return reaped


def requeue_unclaimed(
    session: Session,
    timeout_s: float,
    now: float | None = None,
    *,
    silent_after_s: float | None = None,
) -> list[str]:
    """Queued jobs nobody claimed in time go back to pending so admission can re-place them.

    ``silent_after_s``: also, at once, those queued on a worker that has sent no heartbeat
    for that long (frozen, cut off): it would not claim them for the whole ``timeout_s``.
    Should it claim one after all, the claim finds the job moved on and runs nothing.
    """
    now = now or time.time()
    late = Job.queued_at < now - timeout_s
    if silent_after_s is not None:
        silent = select(Worker.name).where(Worker.heartbeat_at < now - silent_after_s)
        late = or_(late, Job.worker_name.in_(silent.scalar_subquery()))
    stale = session.scalars(select(Job).where(Job.state == S.QUEUED.value, late)).all()
    moved: list[str] = []
    for job in stale:
        waited = now - (job.queued_at or now)
        why = (
            f"not claimed by {job.worker_name} within {timeout_s:.0f}s"
            if waited >= timeout_s
            else f"its worker {job.worker_name} sent no heartbeat for {silent_after_s:.0f}s"
        )
        if transition(
            session,
            job.id,
            S.PENDING,
            reason=why,
            expect={S.QUEUED},
            values={
                "worker_name": None,
                "reason_code": "worker_lost",
                "reason": "placed worker did not claim it",
            },
        ):
            moved.append(job.id)
    return moved
