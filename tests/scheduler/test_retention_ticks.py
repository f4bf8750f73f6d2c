"""The beat's retention and scratch ticks: for jobs that ended without a runner to clean up."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from scheduler.beat import system_schedule
from scheduler.ticks import run_retention, run_scratch_sweep
from storage.blobs import store_stream
from storage.db import transaction
from storage.layout import checkpoint_prefix
from storage.models import Checkpoint, Job, Team
from storage.platform import Platform
from storage.schema import upgrade
from storage.states import JobState, record_event, transition
from tunepool.messages import RETAIN_CHECKPOINTS_TASK, SWEEP_SCRATCH_TASK
from tunepool.settings import Settings


@pytest.fixture
def platform(tmp_path: Path, database_url: str) -> Iterator[Platform]:
    platform = Platform(
        Settings(
            home=tmp_path / "home",
            database_url=database_url,
            object_store_url=(tmp_path / "objects").as_uri(),
            keep_checkpoints=1,
        )
    )
    upgrade(platform.engine)
    yield platform
    platform.close()


def test_a_job_cancelled_while_pending_is_retained_and_swept_by_the_ticks(
    platform: Platform,
) -> None:
    """Preempted after three checkpoints, then cancelled before it ran again: no runner
    was there at its end, so only the ticks can bring it down to what is kept."""
    with transaction(platform.sessions) as session:
        team = Team(name="t")
        session.add(team)
        session.flush()
        job = Job(
            team_id=team.id,
            type="finetune",
            task="token-classification",
            spec={},
            state="pending",
            attempt=1,
            started_at=1.0,
        )
        session.add(job)
        session.flush()
        for step in (10, 20, 30):
            prefix = checkpoint_prefix(team.id, job.id, step)
            store_stream(session, platform.store, prefix + "model.safetensors", io.BytesIO(b"m"))
            session.add(Checkpoint(job_id=job.id, attempt=1, step=step, epoch=1, prefix=prefix))
            record_event(session, job.id, "checkpoint", data={"step": step, "best_step": 10})
        job_id = job.id
    scratch = platform.settings.scratch_dir / job_id / "attempt-1"
    scratch.mkdir(parents=True)
    assert run_scratch_sweep(platform) == [str(scratch)]  # pending: the old attempt is stale
    assert (platform.settings.scratch_dir / job_id).is_dir()
    assert run_retention(platform) == []  # not finished: nothing to do yet

    with transaction(platform.sessions) as session:
        assert transition(session, job_id, JobState.CANCELLED, reason="cancelled by request")
    assert run_retention(platform) == [job_id]
    assert run_retention(platform) == []  # once
    with platform.sessions() as session:
        steps = session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id))
        assert sorted(steps) == [10, 30]  # the best, and the newest one
    assert run_scratch_sweep(platform) == [str(platform.settings.scratch_dir / job_id)]


def test_the_ticks_are_on_the_schedule() -> None:
    schedule = system_schedule(Settings(retention_interval_s=120, scratch_sweep_interval_s=300))
    assert schedule["checkpoint_retention"]["task"] == RETAIN_CHECKPOINTS_TASK
    assert schedule["checkpoint_retention"]["schedule"] == 120
    assert schedule["scratch_sweep"]["task"] == SWEEP_SCRATCH_TASK
    assert schedule["scratch_sweep"]["schedule"] == 300
