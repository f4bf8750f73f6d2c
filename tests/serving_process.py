"""A real serving worker (``tunepool serve``) as a subprocess, for the tests that predict.

The session shares one (``serving_worker`` in tests/conftest.py): it reads the session's
Redis and a session-wide object store, which the API tests' platforms write to (keys
are per team, and team ids are unique, so tests never meet). Fault tests start their
own on a Redis of their own, to freeze or kill it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tunepool.serving_protocol import WORKERS, Advert, advert_key


def serving_env(
    home: Path, redis_url: str, objects: Path, base_models: dict[str, str], **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEPOOL_")}
    env.update(
        {
            "TUNEPOOL_HOME": str(home),
            "TUNEPOOL_REDIS_URL": redis_url,
            "TUNEPOOL_OBJECT_STORE_URL": objects.as_uri(),
            "TUNEPOOL_BASE_MODELS": json.dumps(base_models),
            # Waits long enough that concurrent test requests meet in one batch.
            "TUNEPOOL_SERVE_MAX_WAIT_MS": "50",
            "TUNEPOOL_SERVE_HEARTBEAT_S": "0.3",
            "TUNEPOOL_SERVE_LOST_AFTER_S": "2",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class ServingProcess:
    name: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["TUNEPOOL_REDIS_URL"])

    def start(self, timeout_s: float = 60.0) -> ServingProcess:
        return self.launch().wait_ready(timeout_s)

    def launch(self) -> ServingProcess:
        """Start the process without waiting for it to advertise itself."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "commands", "serve", "--name", self.name],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def advert(self) -> Advert | None:
        raw: Any = self.redis.get(advert_key(self.name))
        return Advert.from_json(raw) if raw is not None else None

    def wait_ready(self, timeout_s: float = 30.0) -> ServingProcess:
        """Until its advert and its stream are in Redis (again, after a test flushed it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.output()
            advert = self.advert()
            if (
                advert is not None
                and self.redis.exists(advert.stream)
                and self.redis.zscore(WORKERS, self.name) is not None
            ):
                return self
            time.sleep(0.05)
        raise AssertionError(f"serving worker {self.name} not ready:\n{self.output()}")

    def model_stats(self, version_id: str) -> dict[str, int]:
        advert = self.advert()
        return dict(advert.models.get(version_id, {})) if advert is not None else {}

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)  # a frozen worker cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
