"""Cancel that you can check: cooperative first, then SIGTERM, then SIGKILL.

A cancelled running job is asked to stop through its row (``cancelling``); the
training loop sees it within a second, checkpoints and exits. If the process
does not exit within the grace period, the worker that hosts it escalates, and
the job is marked ``cancelled`` only once its process is gone (and, on a GPU,
once the driver no longer lists it as holding memory).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.attempts import AttemptOutcome
from storage.lease import end_run
from storage.models import Job, JobEvent, JobRun
from storage.states import JobState, transition
from tunepool.gpu_stats import compute_pids
from tunepool.processes import process_alive

log = logging.getLogger(__name__)
S = JobState


def gpu_holds_memory(pid: int) -> bool:
    """Whether NVML still lists the process on a GPU; False on hosts without GPUs."""
    return pid in compute_pids()


def enforce_cancellations(
    session: Session,
    worker_name: str,
    grace_s: float,
    now: float | None = None,
    send: Callable[[int, int], None] = os.kill,
) -> list[str]:
    """On this worker's host: escalate stuck cancels; mark cancelled those whose process is gone."""
    now = now or time.time()
    rows = session.execute(
        select(Job, JobRun)
        .join(JobRun, (JobRun.job_id == Job.id) & (JobRun.lease_owner == Job.lease_owner))
        .where(Job.state == S.CANCELLING.value, Job.worker_name == worker_name)
    ).all()
    done: list[str] = []
    for job, run in rows:
        asked = (
            session.scalar(
                select(func.max(JobEvent.at)).where(
                    JobEvent.job_id == job.id, JobEvent.new_state == S.CANCELLING.value
                )
            )
            or now
        )
        waited = now - asked
        pid = run.pid
        if pid is not None and process_alive(pid):
            if waited >= 2 * grace_s:
                log.warning("job %s: process %d ignored SIGTERM; sending SIGKILL", job.id, pid)
                send(pid, signal.SIGKILL)
            elif waited >= grace_s:
                log.warning(
                    "job %s: process %d did not stop in %.0fs; sending SIGTERM",
                    job.id,
                    pid,
                    grace_s,
                )
                send(pid, signal.SIGTERM)
            continue
        if pid is not None and gpu_holds_memory(pid):
            continue
        owner = job.lease_owner
        if transition(
            session,
            job.id,
            S.CANCELLED,
            reason=f"cancelled; process {pid} is gone"
            + (" after escalation" if waited >= grace_s else ""),
            expect={S.CANCELLING},
            values={"worker_name": None},
        ):
            if owner:
                end_run(session, job.id, owner, AttemptOutcome.CANCELLED)
            done.append(job.id)
    return done
