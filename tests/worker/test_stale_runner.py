"""A runner whose lease was taken (it froze past it and was reaped) writes nothing more
about its job: no progress, no evaluation, no pruned checkpoints, no log lines; while it
still holds the lease, all of them are written (issue 20 item 6; the real-process test
is tests/e2e/test_frozen_worker.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy import func, select

from storage.db import transaction
from storage.lease import claim, reap_expired
from storage.models import Job, JobEvent
from storage.platform import Platform
from storage.schema import upgrade
from tests.storage.test_lease import queued_job
from tunepool.settings import Settings
from worker.job_callbacks import JobCallbacks
from worker.job_logs import JobLogHandler


def _events(platform: Platform, job_id: str) -> dict[str, int]:
    with platform.sessions() as session:
        rows = session.execute(
            select(JobEvent.kind, func.count())
            .where(JobEvent.job_id == job_id)
            .group_by(JobEvent.kind)
        ).all()
    return {str(kind): int(n) for kind, n in rows}


def test_a_reaped_runner_reports_nothing_more(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    platform = Platform(settings)
    upgrade(platform.engine)
    job_id = queued_job(platform.sessions)
    with transaction(platform.sessions) as session:
        assert claim(session, job_id, "w1", "w1/1", 60) is not None
        job = session.get(Job, job_id)
        assert job is not None
        team_id = job.team_id
    callbacks = JobCallbacks(platform, job_id, team_id, "w1/1", 1)
    logs = JobLogHandler(platform, job_id, "w1/1")
    record = logging.LogRecord("worker.test", logging.INFO, __file__, 1, "line", None, None)
    try:
        # While it holds the lease, everything is written.
        callbacks.on_progress({"step": 1, "loss": 0.5})
        callbacks.on_evaluate(1, {"f1": 0.5})
        logs.emit(record)
        logs.flush()
        written = _events(platform, job_id)
        assert {k: written.get(k) for k in ("progress", "evaluation", "log")} == {
            "progress": 1,
            "evaluation": 1,
            "log": 1,
        }
        # It freezes past its lease, and the reaper gives the job back.
        with transaction(platform.sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.lease_until = time.time() - 1
        with transaction(platform.sessions) as session:
            assert reap_expired(session) == [job_id]
        with platform.sessions() as session:
            before = session.get(Job, job_id)
            assert before is not None
            progress, metrics = before.progress, before.metrics
        written = _events(platform, job_id)

        callbacks.on_progress({"step": 2, "loss": 0.4})
        callbacks.on_evaluate(2, {"f1": 0.6})
        logs.emit(record)
        logs.flush()
        assert _events(platform, job_id) == written
        with platform.sessions() as session:
            after = session.get(Job, job_id)
            assert after is not None
            assert (after.progress, after.metrics) == (progress, metrics)
        assert callbacks.lease_lost and callbacks.should_stop() == "lease_lost"
    finally:
        logs.close()
        platform.close()
