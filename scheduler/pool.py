"""Workers and their slots: registration, heartbeats, and losing a worker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.lease import end_run, return_to_pending
from storage.models import Job, Worker
from storage.states import HOLDING_SLOTS, LEASED, JobState, transition


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str
    queue: str
    slots: int
    gpus: list[dict[str, Any]] = field(default_factory=list)


def register(session: Session, info: WorkerInfo) -> None:
    """Insert or refresh a worker; a restarted worker with the same name comes back alive."""
    now = time.time()
    worker = session.get(Worker, info.name)
    if worker is None:
        session.add(
            Worker(
                name=info.name,
                hostname=info.hostname,
                queue=info.queue,
                slots=info.slots,
                gpus=info.gpus,
                state="alive",
                registered_at=now,
                heartbeat_at=now,
            )
        )
        return
    worker.hostname, worker.queue, worker.slots, worker.gpus = (
        info.hostname,
        info.queue,
        info.slots,
        info.gpus,
    )
    worker.state, worker.heartbeat_at = "alive", now


def heartbeat(session: Session, name: str) -> bool:
    worker = session.get(Worker, name)
    if worker is None:
        return False
    worker.heartbeat_at = time.time()
    worker.state = "alive"
    return True


def retire(session: Session, name: str) -> None:
    """A worker that shuts down cleanly says so, so admission stops placing jobs on it."""
    worker = session.get(Worker, name)
    if worker is not None:
        worker.state = "stopped"


def mark_lost(session: Session, lost_after_s: float, now: float | None = None) -> list[str]:
    """Workers silent for too long are lost; their jobs go back to pending to resume elsewhere."""
    now = now or time.time()
    silent = session.scalars(
        select(Worker).where(Worker.state == "alive", Worker.heartbeat_at < now - lost_after_s)
    ).all()
    lost: list[str] = []
    for worker in silent:
        worker.state = "lost"
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
                    end_run(session, job.id, owner, "worker_lost", ended_at=job.lease_until)
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
