"""Warm shutdown of a worker: its running jobs checkpoint, give back their lease, and resume.

Celery's prefork children reset SIGTERM to its default (die at once), and the parent's
warm shutdown waits for running tasks to finish, which for training means hours. So:

- while a job runs, its process turns SIGTERM into a request that the training loop
  sees at its next step (``JobCallbacks.should_stop`` answers ``"shutdown"``); the loop
  checkpoints and the runner moves the job back to ``pending`` without a lease;
- the parent, on ``worker_shutting_down`` (its own SIGTERM, as ``docker stop`` sends),
  stops admission from placing jobs on it and relays SIGTERM to the processes of the
  runs it hosts, found by their ``JobRun.pid``.

A second SIGTERM during the checkpoint is ignored: the job is already stopping.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.attempts import AttemptOutcome
from storage.db import transaction
from storage.lease import release
from storage.models import Job, JobRun
from storage.states import LEASED, JobState
from storage.workers import retire

log = logging.getLogger(__name__)

_requested = threading.Event()


def requested() -> bool:
    """Whether this process was asked to stop its job."""
    return _requested.is_set()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # Only set a flag: a signal handler must not touch SQL or the object store.
    _requested.set()


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """For the duration of a job: SIGTERM asks the job to stop instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be installed from the main thread (in-thread test workers).
        yield
        return
    _requested.clear()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def running_pids(session: Session, worker_name: str) -> list[int]:
    """Processes of this worker's open runs whose job still holds a lease."""
    rows = session.execute(
        select(JobRun.pid)
        .join(Job, (Job.id == JobRun.job_id) & (Job.lease_owner == JobRun.lease_owner))
        .where(
            JobRun.worker_name == worker_name,
            JobRun.ended_at.is_(None),
            JobRun.pid.is_not(None),
            Job.state.in_([s.value for s in LEASED]),
        )
    ).all()
    return sorted({int(pid) for (pid,) in rows if pid})


def _is_my_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False


def relay_sigterm(pids: list[int]) -> list[int]:
    """Send SIGTERM to each pid that is still there; returns those signalled."""
    sent = []
    for pid in pids:
        if not _is_my_child(pid):
            continue  # a recycled pid, or a run of another worker process with our name
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        sent.append(pid)
    if sent:
        log.warning("worker shutting down: asked job process(es) %s to checkpoint and stop", sent)
    return sent


def give_back(session: Session, job_id: str, owner: str) -> str:
    """After the stop checkpoint: the job returns to pending without a lease (or is cancelled
    if a cancel came first); another worker resumes it from that checkpoint."""
    S = JobState
    job = session.get(Job, job_id, populate_existing=True)
    if job is not None and job.state == S.CANCELLING.value:
        release(
            session,
            job_id,
            owner,
            S.CANCELLED,
            expect={S.CANCELLING},
            reason="cancelled by request; its worker shut down after the checkpoint",
            outcome=AttemptOutcome.CANCELLED,
        )
        return AttemptOutcome.CANCELLED
    moved = release(
        session,
        job_id,
        owner,
        S.PENDING,
        expect={S.RUNNING, S.PREEMPTING},
        reason="its worker is shutting down; resumes from its checkpoint",
        outcome=AttemptOutcome.SHUTDOWN,
        waiting=("worker_shutdown", "its worker shut down; waiting to resume"),
    )
    return AttemptOutcome.SHUTDOWN if moved else AttemptOutcome.LEASE_LOST


def begin_warm_shutdown(sessions: sessionmaker[Session], worker_name: str) -> list[int]:
    """In the worker's parent: no new placements here, and each running job is told to stop."""
    try:
        with transaction(sessions) as session:
            retire(session, worker_name)
            pids = running_pids(session, worker_name)
    except Exception:
        # Without SQL the children still get SIGTERM from a process-group stop; the lease
        # recovers the rest.
        log.exception("warm shutdown of %s: could not read its running jobs", worker_name)
        return []
    return relay_sigterm(pids)
