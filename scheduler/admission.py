"""Admission: who runs next, on which worker (DESIGN §4).

``plan`` is a plain function over plain data, so it is tested and benchmarked
without SQL or a broker; ``admit`` loads the rows, applies the plan through the
state machine, commits, and only then publishes (a job exists once its row is
committed; a lost message is recovered from SQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import lock_scheduler
from storage.models import Job, Worker
from storage.states import HOLDING_SLOTS, JobState, transition

PRIORITIES = {"high": 2, "normal": 1, "low": 0}
DEFAULT_RUNTIME_S = 600.0


@dataclass(frozen=True)
class PendingJob:
    id: str
    priority: int
    slots: int
    created_at: float
    estimated_runtime_s: float = DEFAULT_RUNTIME_S
    kind: str = "finetune"


@dataclass
class WorkerCapacity:
    name: str
    queue: str
    slots: int
    # When each busy slot is expected to free up (seconds since the epoch).
    busy_until: list[float] = field(default_factory=list)

    @property
    def free(self) -> int:
        return self.slots - len(self.busy_until)


@dataclass(frozen=True)
class Placement:
    job_id: str
    worker: str
    queue: str
    kind: str = "finetune"


@dataclass(frozen=True)
class Wait:
    reason_code: str
    reason: str
    position: int
    estimated_start: float | None


@dataclass
class AdmissionPlan:
    placements: list[Placement] = field(default_factory=list)
    waits: dict[str, Wait] = field(default_factory=dict)


def order(jobs: Sequence[PendingJob]) -> list[PendingJob]:
    """Higher priority first, then oldest first."""
    return sorted(jobs, key=lambda j: (-j.priority, j.created_at, j.id))


def plan(
    jobs: Sequence[PendingJob], workers: Sequence[WorkerCapacity], now: float
) -> AdmissionPlan:
    """Place what fits now (best fit: the worker with the fewest free slots that suffice);
    for the rest, say why and estimate when, by list-scheduling on expected finish times."""
    result = AdmissionPlan()
    free = {w.name: w.free for w in workers}
    # Slot release times per worker, for the start estimate of jobs that must wait.
    timeline = {w.name: sorted(w.busy_until) for w in workers}
    largest = max((w.slots for w in workers), default=0)
    position = 0
    for job in order(jobs):
        candidates = [w for w in workers if free[w.name] >= job.slots]
        if candidates:
            chosen = min(candidates, key=lambda w: (free[w.name], w.name))
            free[chosen.name] -= job.slots
            timeline[chosen.name] = sorted(
                timeline[chosen.name] + [now + job.estimated_runtime_s] * job.slots
            )
            result.placements.append(Placement(job.id, chosen.name, chosen.queue, job.kind))
            continue
        position += 1
        if job.slots > largest:
            reason = (
                f"needs {job.slots} slots on one worker; the largest live worker has {largest}"
                if workers
                else "no worker has registered yet"
            )
            result.waits[job.id] = Wait("no_free_gpu", reason, position, None)
            continue
        start = _earliest_start(job.slots, workers, timeline, now)
        result.waits[job.id] = Wait(
            "no_free_gpu",
            f"waiting for {job.slots} free slot(s) on one worker",
            position,
            start,
        )
    return result


def _earliest_start(
    slots: int, workers: Sequence[WorkerCapacity], timeline: dict[str, list[float]], now: float
) -> float | None:
    """Earliest time some worker has ``slots`` free, and book them for this job."""
    best: tuple[float, str, int] | None = None
    for w in workers:
        if w.slots < slots:
            continue
        busy = timeline[w.name]
        # With k of n slots busy, `slots` are free once the (k - (n - slots))-th busy one ends.
        need = len(busy) - (w.slots - slots)
        at = now if need <= 0 else max(now, busy[need - 1])
        if best is None or at < best[0]:
            best = (at, w.name, max(0, need))
    if best is None:
        return None
    at, name, need = best
    # The job takes over the slots that freed up and holds them for a default run time.
    timeline[name] = sorted(timeline[name][need:] + [at + DEFAULT_RUNTIME_S] * slots)
    return at


def _load(session: Session, now: float) -> tuple[list[PendingJob], list[WorkerCapacity]]:
    pending = session.scalars(select(Job).where(Job.state == JobState.PENDING.value)).all()
    jobs = [
        PendingJob(j.id, j.priority, j.slots, j.created_at, _runtime_estimate(j), j.type)
        for j in pending
    ]
    alive = session.scalars(
        select(Worker).where(Worker.state == "alive").order_by(Worker.name)
    ).all()
    capacity = {w.name: WorkerCapacity(w.name, w.queue, w.slots) for w in alive}
    holding = session.scalars(
        select(Job).where(
            Job.state.in_([s.value for s in HOLDING_SLOTS]), Job.worker_name.is_not(None)
        )
    ).all()
    for j in holding:
        if j.worker_name in capacity:
            eta = float(j.progress.get("eta_s") or _runtime_estimate(j))
            capacity[j.worker_name].busy_until.extend([now + eta] * j.slots)
    return jobs, list(capacity.values())


def _runtime_estimate(job: Job) -> float:
    return float(job.spec.get("estimated_runtime_s") or DEFAULT_RUNTIME_S)


# publish(job_id, queue, job_type): the job type picks the Celery task.
Publish = Callable[[str, str, str], None]


def admit(session: Session, publish: Publish, now: float | None = None) -> list[Placement]:
    """One admission pass. Commits; then publishes each placed job to its worker's queue."""
    now = now or time.time()
    lock_scheduler(session)
    jobs, workers = _load(session, now)
    decided = plan(jobs, workers, now)
    placed: list[Placement] = []
    for p in decided.placements:
        if transition(
            session,
            p.job_id,
            JobState.QUEUED,
            reason=f"admitted to worker {p.worker}",
            expect={JobState.PENDING},
            values={
                "worker_name": p.worker,
                "queued_at": now,
                "reason_code": None,
                "reason": None,
                "queue_position": None,
                "estimated_start": None,
            },
            data={"worker": p.worker},
        ):
            placed.append(p)
    for job_id, wait in decided.waits.items():
        job = session.get(Job, job_id)
        if job is None:
            continue
        job.reason_code, job.reason = wait.reason_code, wait.reason
        job.queue_position, job.estimated_start = wait.position, wait.estimated_start
    session.commit()
    for p in placed:
        publish(p.job_id, p.queue, p.kind)
    return placed
