"""Redis SIGKILLed and restarted empty while jobs are pending, queued and running: all finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from commands.embedded import child_env
from commands.redis_server import RedisServer, start_redis
from scheduler.reconciler import run_reconciler
from scheduler.ticks import run_admission, run_reaper
from storage.db import transaction
from storage.models import JobEvent
from storage.platform import Platform
from storage.schema import upgrade
from storage.workers import WorkerInfo, register
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.test_training_job import api, job_state, submit, tiny_model, upload
from tunepool.messages import worker_queue
from tunepool.settings import Settings

pytestmark = pytest.mark.chaos
__all__ = ["tiny_model"]  # the module-scoped fixture, shared with the training e2e tests


@pytest.fixture
def redis_box(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """A Redis of this test's own (no persistence), so that it can be killed; box[0] is current."""
    box = [start_redis(tmp_path / "redis", persist=False)]
    yield box
    box[0].stop()


@pytest.fixture
def live_own_redis(
    tmp_path: Path,
    redis_box: list[RedisServer],
    e2e_database_url: str,
    tiny_base_models: dict[str, str],
) -> Iterator[WorkerProcs]:
    # Lost workers and unclaimed jobs are only noticed after minutes here, so that a job
    # whose message Redis lost can only finish in time if the reconciler publishes it again.
    tuning = {
        "lease_ttl_s": 4.0,
        "lease_renew_s": 0.5,
        "worker_heartbeat_s": 1.0,
        "worker_lost_after_s": 120.0,
        # (A worker slow to beat would otherwise have its queued job placed again.)
        "worker_stale_after_s": 120.0,
        "claim_timeout_s": 600.0,
        "reconcile_grace_s": 2.0,
    }
    settings = Settings(
        home=tmp_path / "home",
        # SQLite only: the broker is what fails here, and real processes are slow on 2 cores.
        database_url=e2e_database_url,
        object_store_url=(tmp_path / "objects").as_uri(),
        redis_url=redis_box[0].url,
        base_models=tiny_base_models,
        **tuning,  # type: ignore[arg-type]
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    env = child_env(settings, **{f"TUNEPOOL_{k.upper()}": str(v) for k, v in tuning.items()})
    procs = WorkerProcs(platform, env, tmp_path)
    yield procs
    procs.stop_all()
    platform.close()


def test_every_job_finishes_when_redis_restarts_empty(
    live_own_redis: WorkerProcs, redis_box: list[RedisServer], tiny_model: str
) -> None:
    live = live_own_redis
    client, headers = api(live)
    live.start("wA")
    train, small = upload(client, headers, 600, 1), upload(client, headers, 60, 2)
    validation = upload(client, headers, 20, 3)
    running = submit(client, headers, tiny_model, train, validation, epochs=3)
    wait_until(lambda: job_state(live, running).state == "running", 120, "the first job to run")

    # wB is known to SQL but its process is not up yet: the job placed on it waits as a
    # message in Redis, the one that the restart will lose.
    with transaction(live.platform.sessions) as session:
        register(session, WorkerInfo("wB", "test", worker_queue("wB"), 1))
    queued = submit(client, headers, tiny_model, small, validation)
    run_admission(live.platform)
    assert job_state(live, queued).state == "queued"
    assert job_state(live, queued).worker_name == "wB"
    pending = submit(client, headers, tiny_model, small, validation)
    run_admission(live.platform)
    assert job_state(live, pending).state == "pending"

    server = redis_box[0]
    server.process.kill()  # SIGKILL, no persistence: every message is gone
    server.process.wait()
    time.sleep(1)
    redis_box[0] = start_redis(live.logs / "redis-restarted", port=server.port, persist=False)
    assert job_state(live, running).state == "running", "the running job did not survive"
    live.start("wB")

    def tick() -> None:
        run_reaper(live.platform)
        run_reconciler(live.platform)

    jobs = [running, queued, pending]
    wait_until(
        lambda: all(job_state(live, j).state in ("succeeded", "failed") for j in jobs),
        300,
        "every job to finish",
        every_s=1.0,
        on_tick=tick,
    )
    assert [job_state(live, j).state for j in jobs] == ["succeeded"] * 3, (
        [job_state(live, j).error for j in jobs],
        live.log("wA")[-2000:],
        live.log("wB")[-2000:],
    )
    with live.platform.sessions() as session:
        republished = session.scalars(
            select(JobEvent.job_id).where(JobEvent.kind == "republished")
        ).all()
    assert queued in republished
    # Exactly one run each: nothing ran twice.
    assert all(job_state(live, j).attempt == 1 for j in jobs)
