"""Workers and their slots as admission sees them, and losing a worker.

A worker's own rows (register, heartbeat, retire) are written by the worker through
``storage.workers``; declaring one lost and re-placing its jobs is scheduling policy.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.attempts import AttemptOutcome
from storage.lease import end_run, return_to_pending
from storage.models import Job, Worker
from storage.states import HOLDING_SLOTS, LEASED, JobState, transition
from storage.worker_state import WorkerState, set_worker_state

ALIVE = WorkerState.ALIVE.value


def mark_lost(session: Session, lost_after_s: float, now: float | None = None) -> list[str]:
    """Workers silent for too long are lost; their jobs go back to pending to resume elsewhere."""
    now = now or time.time()
    silent = session.scalars(
        select(Worker).where(Worker.state == ALIVE, Worker.heartbeat_at < now - lost_after_s)
    ).all()
    lost: list[str] = []
    for worker in silent:
        set_worker_state(worker, WorkerState.LOST)
        lost.append(worker.name)
        jobs = session.scalars(
            select(Job).where(
                Job.worker_name == worker.name, Job.state.in_([s.value for s in HOLDING_SLOTS])
            )
        ).all()
        for job in jobs:
            owner = job.lease_owner
            reason = f"worker {worker.name} lost (no heartbeat for {lost_after_s:.0f}s)"
            if JobState(job.state) in LEASED:
                if (
                    return_to_pending(session, job, reason=reason, reason_code="worker_lost")
                    and owner
                ):
                    end_run(
                        session, job.id, owner, AttemptOutcome.WORKER_LOST, ended_at=job.lease_until
                    )
            else:
                transition(
                    session,
                    job.id,
                    JobState.PENDING,
                    reason=reason,
                    expect={JobState.QUEUED},
                    values={"worker_name": None, "reason_code": "worker_lost", "reason": reason},
                )
    return lost


def used_slots(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Job.worker_name, func.sum(Job.slots))
        .where(Job.state.in_([s.value for s in HOLDING_SLOTS]), Job.worker_name.is_not(None))
        .group_by(Job.worker_name)
    ).all()
    return {str(name): int(total or 0) for name, total in rows}
