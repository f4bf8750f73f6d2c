"""After a job the worker asks for an admission pass by task name, never by importing the
scheduler: inline mode runs the admit task the Celery app registered in the worker's
process, and a process without it publishes the task to the control queue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from commands.redis_server import RedisServer
from tunepool.messages import ADMIT_TASK, CONTROL_QUEUE
from tunepool.observations import ADMISSION_KEY

ASK = """
import sys
from storage.schema import upgrade
from storage.platform import Platform
from tunepool.settings import Settings
import worker.tasks
if sys.argv[1] == "root":
    import commands.celery_app
    commands.celery_app.app.loader.import_default_modules()  # as `celery -A commands.celery_app`
platform = Platform(Settings(admission_coalesce_s=0))
upgrade(platform.engine)
worker.tasks._request_admission(platform)
print(",".join(m for m in ("scheduler", "scheduler.ticks") if m in sys.modules))
"""


@pytest.mark.parametrize("app, passes, published", [("root", 1, 0), ("worker-only", 0, 1)])
def test_inline_ask_runs_the_registered_admit_task_or_publishes_it(
    tmp_path: Path, redis_server: RedisServer, app: str, passes: int, published: int
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    env = {
        "PATH": "",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TUNEPOOL_HOME": str(tmp_path),
        "TUNEPOOL_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "TUNEPOOL_REDIS_URL": redis_server.url,
    }
    result = subprocess.run(
        [sys.executable, "-c", ASK, app], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(client.hget(ADMISSION_KEY, "count") or 0) == passes  # type: ignore[arg-type]
    messages = client.lrange(CONTROL_QUEUE, 0, -1)
    assert len(messages) == published  # type: ignore[arg-type]
    if published:
        assert ADMIT_TASK.encode() in messages[0]  # type: ignore[index]
        # Only the composition root brought the scheduler in; the worker's own code did not.
        assert result.stdout.strip() == ""
