"""A worker's scratch space: ``<scratch root>/<job id>/attempt-<n>/`` per run, and what goes.

A run deletes its own attempt directory when it ends, and the whole job directory when
the job ended. A killed run deletes nothing, so the sweep (on worker start, on a beat
tick and from each worker's heartbeat now and then) removes what no run can still use.

Several worker processes may share one root (``tunepool up``, a host with two workers)
and a sweep cannot know which process a directory belongs to, so it asks SQL only: an
attempt directory is kept while its job is leased *with that attempt*, and so is one
numbered above the job's attempt (a claim this sweep read too early to see). Everything
else of a job that exists is stale: the next attempt of a job works in a new directory.
A job directory whose job is gone or finished goes whole. Names that are not job ids
(``serving/`` of serving workers, anything an operator put there) are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Job
from storage.states import LEASED, TERMINAL

log = logging.getLogger(__name__)

JOB_DIR = re.compile(r"job_[0-9a-f]+")
ATTEMPT_DIR = re.compile(r"attempt-(\d+)")


def attempt_dir(root: Path, job_id: str, attempt: int) -> Path:
    return root / job_id / f"attempt-{attempt}"


def release_scratch(root: Path, job_id: str, attempt: int, job_ended: bool) -> None:
    """A run is over: its attempt directory goes; the job's too once the job has ended."""
    shutil.rmtree(attempt_dir(root, job_id, attempt), ignore_errors=True)
    if job_ended:
        shutil.rmtree(root / job_id, ignore_errors=True)
    else:
        _remove_if_empty(root / job_id)


def sweep_scratch(session: Session, root: Path) -> list[Path]:
    """Delete the scratch directories that no run can still use; the paths deleted."""
    try:
        names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    except FileNotFoundError:
        return []
    job_ids = [name for name in names if JOB_DIR.fullmatch(name)]
    if not job_ids:
        return []
    jobs = {
        job_id: (state, attempt)
        for job_id, state, attempt in session.execute(
            select(Job.id, Job.state, Job.attempt).where(Job.id.in_(job_ids))
        )
    }
    leased = {s.value for s in LEASED}
    ended = {s.value for s in TERMINAL}
    removed: list[Path] = []
    for job_id in job_ids:
        directory = root / job_id
        state, attempt = jobs.get(job_id, (None, 0))
        if state is None or state in ended:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
            continue
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            match = ATTEMPT_DIR.fullmatch(entry.name)
            if match is None:
                continue  # not a run's directory: leave it to the job's end
            number = int(match.group(1))
            in_use = number > attempt or (number == attempt and state in leased)
            if not in_use:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        # The job directory itself stays until the job ends: a run being claimed now
        # creates its attempt directory inside it and must not find it gone midway.
    if removed:
        log.info("scratch: removed %d director(ies) no run can use: %s", len(removed), removed)
    return removed


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass  # not empty (another attempt works there) or already gone
