"""A worker's own row: it registers on start, beats its heart, and retires on a clean stop.

Written by the worker process (``worker.tasks``, ``worker.shutdown``); admission reads
the rows and the reaper marks silent workers lost (``scheduler.pool``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Worker
from storage.worker_state import WorkerState, set_worker_state


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
    worker.heartbeat_at = now
    set_worker_state(worker, WorkerState.ALIVE)


def heartbeat(session: Session, name: str) -> bool:
    worker = session.get(Worker, name)
    if worker is None:
        return False
    worker.heartbeat_at = time.time()
    set_worker_state(worker, WorkerState.ALIVE)
    return True


def retire(session: Session, name: str) -> None:
    """A worker that shuts down cleanly says so, so admission stops placing jobs on it."""
    worker = session.get(Worker, name)
    if worker is not None:
        set_worker_state(worker, WorkerState.STOPPED)


def has_cuda_worker(session: Session) -> bool:
    """Whether a worker that has not shut down reports NVIDIA GPUs. Such a worker runs a
    CUDA build of torch: one with GPUs and a CPU build refuses to start
    (``worker.cuda_check``)."""
    rows = session.scalars(
        select(Worker.gpus).where(Worker.state != WorkerState.STOPPED.value)
    ).all()
    return any(gpus for gpus in rows)
