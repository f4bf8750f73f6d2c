"""What every fault test checks at its end, whatever the fault was.

- each job is in the state expected, and reached a terminal state exactly once;
- no two runners held a job's lease at the same time (its JobRun intervals don't overlap);
- every stored object (checkpoints, models, datasets) still matches its recorded SHA-256.
"""

from __future__ import annotations

import itertools

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.blobs import verify
from storage.models import Job, JobEvent, JobRun, StoredObject
from storage.platform import Platform
from storage.states import TERMINAL

TERMINAL_STATES = [s.value for s in TERMINAL]


def runs_of(platform: Platform, job_id: str) -> list[JobRun]:
    with platform.sessions() as session:
        return _runs(session, job_id)


def _runs(session: Session, job_id: str) -> list[JobRun]:
    query = select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.started_at)
    return list(session.scalars(query))


def assert_invariants(platform: Platform, expected: dict[str, str]) -> None:
    """``expected`` maps job id -> the terminal state it must be in."""
    with platform.sessions() as session:
        for job_id, state in expected.items():
            job = session.get(Job, job_id)
            assert job is not None, job_id
            assert job.state == state, (job_id, job.state, job.error)
            ends = session.scalars(
                select(JobEvent.new_state).where(
                    JobEvent.job_id == job_id,
                    JobEvent.kind == "state",
                    JobEvent.new_state.in_(TERMINAL_STATES),
                )
            ).all()
            assert ends == [state], f"job {job_id} ended {ends}, not once as {state}"
            assert job.lease_owner is None and job.lease_until is None, job_id
        for job_id in expected:
            runs = _runs(session, job_id)
            assert all(r.ended_at is not None for r in runs), f"{job_id}: a run never ended"
            for first, second in itertools.pairwise(runs):
                assert first.ended_at is not None
                assert first.ended_at <= second.started_at, (
                    f"{job_id}: {first.lease_owner} held the lease until {first.ended_at}, "
                    f"after {second.lease_owner} claimed it at {second.started_at}"
                )
        keys = session.scalars(select(StoredObject.key)).all()
        bad = [key for key in keys if not verify(session, platform.store, key)]
        assert not bad, f"objects that fail their checksum: {bad}"
