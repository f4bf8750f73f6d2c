"""Only training workers offer slots: the control worker loads the same tasks but must
never be registered (admission would place jobs on a queue nobody trains from)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import worker.tasks as tasks
from commands.redis_server import RedisServer
from storage.models import Worker
from storage.platform import Platform
from storage.schema import upgrade
from tunepool.settings import Settings


def platform_for(tmp_path: Path, redis_server: RedisServer, name: str) -> Platform:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        redis_url=redis_server.url,
        worker_name=name,
        worker_slots=2,
        worker_heartbeat_s=3600,
        # The ask for a pass goes to the broker: run inline, the scheduler's admit task
        # would use its own process platform, not this test's.
        admission_coalesce_s=0.5,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    return platform


@pytest.mark.parametrize("name, registered", [("", []), ("gpu-7", ["gpu-7"])])
def test_worker_ready_registers_only_named_training_workers(
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    registered: list[str],
) -> None:
    platform = platform_for(tmp_path, redis_server, name)
    monkeypatch.setattr(tasks, "current_platform", lambda: platform)
    tasks._on_ready()
    with platform.sessions() as session:
        assert list(session.scalars(select(Worker.name))) == registered
    tasks._on_shutdown()
    tasks._stop_heartbeat.clear()
    platform.close()
