"""EASY backfill: reservations for jobs that cannot start, and the worker a later job
may start on now without delaying any of them (best fit otherwise)."""

from __future__ import annotations

from scheduler.plan_data import PendingJob
from scheduler.slot_pool import SlotPool

# A waiting job's reservation: its earliest start and the worker it is expected on.
Reservation = tuple[PendingJob, float, str]


def reserve(pool: SlotPool, job: PendingJob, reservations: list[Reservation]) -> None:
    """Reserve the job's earliest start, where some worker can ever hold it."""
    start = pool.earliest(job.slots)
    if start is not None:
        reservations.append((job, start[0], start[1]))


def pick(
    pool: SlotPool, job: PendingJob, reservations: list[Reservation], now: float
) -> str | None:
    """The worker the job starts on now (best fit, not delaying any reservation), or None.
    A job that came back from a worker goes elsewhere if it can, there only if not."""
    for avoid in (job.avoid_worker, None) if job.avoid_worker is not None else (None,):
        worker = pool.best_fit(job.slots, avoid)
        if worker is not None and reservations:
            worker = _backfill_worker(pool, job, reservations, now, avoid)
        if worker is not None:
            return worker
    return None


def _backfill_worker(
    pool: SlotPool,
    job: PendingJob,
    reservations: list[Reservation],
    now: float,
    avoid: str | None = None,
) -> str | None:
    """A worker where the job can start now without delaying any reserved job."""
    best: tuple[int, str] | None = None
    for name, free in pool.indices.items():
        if len(free) < job.slots or name == avoid:
            continue
        harmless = all(
            name != reserved_worker
            or now + job.estimated_runtime_s <= start
            or pool.free_at(name, start) - job.slots >= reserved.slots
            for reserved, start, reserved_worker in reservations
        )
        if harmless and (best is None or (len(free), name) < best):
            best = (len(free), name)
    return best[1] if best else None
