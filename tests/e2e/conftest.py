"""End-to-end fixtures: real Celery worker subprocesses on real Redis and real SQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from commands.embedded import child_env
from commands.redis_server import RedisServer
from storage.platform import Platform
from storage.schema import upgrade
from tunepool.settings import Settings


@dataclass
class WorkerProcs:
    platform: Platform
    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, slots: int = 1) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "commands",
                "worker",
                "--name",
                name,
                "--slots",
                str(slots),
                "--loglevel",
                "info",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_control(self) -> subprocess.Popen[bytes]:
        """The control worker that runs deferred admission passes (``tunepool control``)."""
        log = (self.logs / "control.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "commands", "control", "--loglevel", "info"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs["control"] = proc
        return proc

    def start_serving(self, name: str = "serve") -> subprocess.Popen[bytes]:
        """A serving worker (``tunepool serve``) for this platform's online predictions."""
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "commands", "serve", "--name", name],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def allow_noop_engine(self) -> None:
        """Let the API accept, and workers started from now on run, ``noop:*`` base models."""
        self.env["TUNEPOOL_ALLOW_NOOP_ENGINE"] = "1"
        self.platform.settings.allow_noop_engine = True

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process tree, as when its machine dies."""
        proc = self.procs[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                self.kill(name, signal.SIGKILL)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture(params=["sqlite"])
def e2e_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite by default (real processes are slow on 2 cores); a test that should also run on
    PostgreSQL parametrizes this fixture indirectly with "postgresql"."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tunepool.sqlite3'}"
    url: str = request.getfixturevalue("database_url_postgres")
    return url


@pytest.fixture
def live(
    tmp_path: Path,
    redis_server: RedisServer,
    e2e_database_url: str,
    tiny_base_models: dict[str, str],
) -> Iterator[WorkerProcs]:
    database_url = e2e_database_url
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        object_store_url=(tmp_path / "objects").as_uri(),
        redis_url=redis_server.url,
        # The API and (through child_env) the workers allow-list the tiny model.
        base_models=tiny_base_models,
        # Short leases so that a killed worker's job is reaped within seconds.
        lease_ttl_s=10.0,
        lease_renew_s=0.5,
        worker_heartbeat_s=1.0,
        worker_lost_after_s=15.0,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    env = child_env(
        settings,
        TUNEPOOL_LEASE_TTL_S="10",
        TUNEPOOL_LEASE_RENEW_S="0.5",
        TUNEPOOL_WORKER_HEARTBEAT_S="1",
        TUNEPOOL_WORKER_LOST_AFTER_S="15",
    )
    # Each test gets its own queues: flush what an earlier test left in the shared Redis.
    import redis

    redis.Redis.from_url(redis_server.url).flushall()
    procs = WorkerProcs(platform, env, tmp_path)
    yield procs
    procs.stop_all()
    platform.close()


def wait_until(
    check: Callable[[], object],
    timeout_s: float,
    what: str,
    every_s: float = 0.2,
    on_tick: Callable[[], object] | None = None,
) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if on_tick is not None:
            on_tick()
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
