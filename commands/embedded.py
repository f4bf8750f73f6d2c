"""``tunepool up``: the whole platform on one machine, as one process group, no Docker.

SQLite and the local object store under TUNEPOOL_HOME, a private Redis, the API
(gunicorn), one worker, one serving worker (online predictions), the control worker
that runs the scheduler's ticks and dataset checks, beat and Flower. Every child gets
the same TUNEPOOL_* environment and its own log file. ``up`` supervises them
(commands.supervisor): whatever dies, Redis included, is started again with backoff,
Redis on its own port and data directory, so clients reconnect to the same URL and
find the queues its append-only file kept.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commands.netutil import free_port, wait_for_port
from commands.redis_server import RedisServer, start_redis
from commands.supervisor import Supervisor
from tunepool.service_logs import ServiceLog
from tunepool.settings import Settings

REDIS = "redis"


@dataclass
class Embedded:
    settings: Settings
    env: dict[str, str]
    api_url: str
    flower_url: str
    redis: RedisServer | None
    supervisor: Supervisor = field(default_factory=Supervisor)

    logs: dict[str, ServiceLog] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        settings = self.settings
        sink = self.logs.setdefault(
            name,
            ServiceLog(
                settings.home / "logs" / f"{name}.log", settings.log_max_bytes, settings.log_backups
            ),
        )

        def launch() -> subprocess.Popen[bytes]:
            # Own session per child, so a whole prefork tree is stopped with one killpg.
            process = subprocess.Popen(
                argv,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert process.stdout is not None
            sink.copy(process.stdout, name)  # rotated by size (tunepool.service_logs)
            return process

        return self.supervisor.add(name, launch)

    def supervise_redis(self) -> None:
        """Watch the private Redis too; it comes back on the same port and data directory."""
        redis = self.redis
        if redis is None:
            return

        def restart() -> subprocess.Popen[bytes]:
            self.redis = start_redis(self.settings.home / "redis", port=redis.port)
            return self.redis.process

        self.supervisor.adopt(REDIS, redis.process, restart)

    def supervise(self) -> list[str]:
        """Restart what died (with backoff); the names restarted now."""
        return self.supervisor.check()

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The platform's own services, Redis (stopped last) aside."""
        return {n: p for n, p in self.supervisor.processes().items() if n != REDIS}

    def dead(self) -> list[str]:
        return [n for n, p in self.processes.items() if p.poll() is not None]

    def stop(self, grace_s: float = 15.0) -> None:
        for proc in self.processes.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if self.redis is not None:
            self.redis.stop()
        for sink in self.logs.values():
            sink.close()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TUNEPOOL_HOME": str(settings.home),
            "TUNEPOOL_DATABASE_URL": settings.resolved_database_url,
            "TUNEPOOL_OBJECT_STORE_URL": settings.resolved_object_store_url,
            "TUNEPOOL_REDIS_URL": settings.redis_url,
            "PYTHONUNBUFFERED": "1",
            # The packaged model loads from disk; never reach for a hub from the embedded mode.
            "HF_HUB_OFFLINE": env.get("HF_HUB_OFFLINE", "1"),
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if settings.base_models:
        # The API and the workers must agree on the allow-list, set in code or in env.
        env["TUNEPOOL_BASE_MODELS"] = json.dumps(settings.base_models)
    env.update(extra)
    return env


def start_platform(
    settings: Settings,
    api_port: int | None = None,
    flower_port: int | None = None,
    worker_slots: int = 1,
    own_redis: bool = True,
) -> Embedded:
    """Start every service and return once the API answers."""
    from storage.db import make_engine
    from storage.schema import upgrade

    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    redis = start_redis(settings.home / "redis") if own_redis else None
    if redis is not None:
        settings = settings.model_copy(update={"redis_url": redis.url})
    flower_password = settings.flower_password or _stored_flower_password(settings)
    api_port, flower_port = api_port or free_port(), flower_port or free_port()
    env = child_env(
        settings,
        TUNEPOOL_FLOWER_PASSWORD=flower_password,
        TUNEPOOL_FLOWER_USER=settings.flower_user,
    )
    platform = Embedded(
        settings, env, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{flower_port}", redis
    )
    platform.start("api", api_argv(settings, api_port))
    # A stable name, so a restarted `up` comes back as the same worker instead of a new one.
    platform.start(
        "worker",
        [
            sys.executable,
            "-m",
            "commands",
            "worker",
            "--slots",
            str(worker_slots),
            "--name",
            f"{socket.gethostname()}-local",
        ],
    )
    # Online predictions run here, not in the API (DESIGN §7).
    platform.start(
        "serve",
        [sys.executable, "-m", "commands", "serve", "--name", f"{socket.gethostname()}-serve"],
    )
    platform.start("control", [sys.executable, "-m", "commands", "control"])
    platform.start("beat", [sys.executable, "-m", "commands", "beat"])
    platform.start(
        "flower",
        [
            sys.executable,
            "-m",
            "commands",
            "flower",
            "--address=127.0.0.1",
            f"--port={flower_port}",
        ],
    )
    try:
        wait_for_port(api_port, 60)
    except TimeoutError:
        platform.stop()
        raise
    return platform


def api_argv(settings: Settings, port: int) -> list[str]:
    """gunicorn serving the API on loopback ``port``."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-b",
        f"127.0.0.1:{port}",
        # Stock threaded workers: one per core here; threads serve event streams
        # and slow clients. More replicas scale it out (README).
        "-k",
        "gthread",
        "-w",
        "2",
        "--threads",
        "8",
        "--timeout",
        "120",
        # gunicorn's control socket (gunicornc) defaults to ~/.gunicorn/gunicorn.ctl, one
        # path for every instance of every user's home; each platform keeps its own.
        "--control-socket",
        str(settings.home / "gunicorn.ctl"),
        "api.wsgi:app",
    ]


def _stored_flower_password(settings: Settings) -> str:
    creds = read_credentials(settings)
    return str(creds.get("flower_password") or secrets.token_urlsafe(12))


def read_credentials(settings: Settings) -> dict[str, Any]:
    path = settings.credentials_path
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write_credentials(settings: Settings, data: dict[str, Any]) -> Path:
    path = settings.credentials_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Keys in plain text: readable by this user only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    os.replace(tmp, path)
    return path
