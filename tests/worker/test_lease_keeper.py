"""The lease keeper renews through slow phases (imports, evaluation, upload) but lets a
run that shows no progress lose its lease, so a hung loop is reaped (DESIGN §3)."""

from __future__ import annotations

import time
from pathlib import Path

from storage.db import transaction
from storage.lease import claim
from storage.models import Job
from storage.platform import Platform
from storage.schema import upgrade
from tests.storage.test_lease import queued_job
from tunepool.settings import Settings
from worker.job_callbacks import JobCallbacks


def test_keeper_renews_while_alive_and_stops_when_the_run_stalls(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        lease_ttl_s=0.6,
        lease_renew_s=0.1,
        loop_stall_s=1.0,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    job_id = queued_job(platform.sessions)
    with transaction(platform.sessions) as session:
        got = claim(session, job_id, "w1", "w1/1", settings.lease_ttl_s)
        assert got is not None
        job = session.get(Job, job_id)
        assert job is not None
        team_id = job.team_id
    callbacks = JobCallbacks(platform, job_id, team_id, "w1/1", 1)
    callbacks.start_lease_keeper()

    def lease_until() -> float:
        with platform.sessions() as session:
            found = session.get(Job, job_id)
            assert found is not None and found.lease_until is not None
            return found.lease_until

    try:
        # No step callback for 0.9 s (well past the 0.6 s lease): still renewed.
        time.sleep(0.9)
        assert lease_until() > time.time()
        callbacks.should_stop()  # progress
        time.sleep(0.5)
        assert lease_until() > time.time()
        # Then the run hangs: past loop_stall_s nobody renews and the lease runs out.
        time.sleep(2.0)
        assert lease_until() < time.time()
    finally:
        callbacks.stop_lease_keeper()
        platform.close()
