"""A job's first progress report gives its worker's start-up time one sample: the time
from its admission (queued_at) to its first trained step (issue 24, item 16)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import update

from commands.redis_server import RedisServer
from storage.db import transaction
from storage.lease import claim
from storage.models import Job
from storage.platform import Platform
from storage.schema import upgrade
from tests.storage.test_lease import queued_job
from tunepool.settings import Settings
from tunepool.startup_times import STARTUP_KEY, startup_times
from worker.job_callbacks import JobCallbacks


def test_the_first_progress_report_measures_the_start(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        redis_url=redis_server.url,
        worker_name="wS",
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    board = redis.Redis.from_url(redis_server.url)
    board.delete(STARTUP_KEY)
    try:
        job_id = queued_job(platform.sessions, worker="wS")
        with transaction(platform.sessions) as session:
            # Admitted 25 s ago; the process, imports and model loading took that long.
            session.execute(update(Job).where(Job.id == job_id).values(queued_at=time.time() - 25))
            assert claim(session, job_id, "wS", "wS/1", 60) is not None
        callbacks = JobCallbacks(platform, job_id, "team", "wS/1", 1)
        callbacks.on_progress({"step": 1, "loss": 0.5})
        assert startup_times(board) == {"wS": pytest.approx(25, abs=2)}
        callbacks.on_progress({"step": 10, "loss": 0.4})  # later reports are no starts
        assert startup_times(board) == {"wS": pytest.approx(25, abs=2)}
    finally:
        board.delete(STARTUP_KEY)
        platform.close()
