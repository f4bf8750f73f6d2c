"""`tunepool worker` starts Celery's worker class without the `celery` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the `celery` command line imports for its plugins and REPL, and a worker never uses.
CLI_ONLY = ("flower", "tornado", "prompt_toolkit", "click_repl", "pygments")

PROBE = """
import json, sys
from commands.celery_worker import build_worker
worker = build_worker(sys.argv[1:])
print(json.dumps({
    "hostname": worker.hostname,
    "queues": sorted(q.name for q in worker.app.amqp.queues.consume_from.values()),
    "concurrency": worker.concurrency,
    "max_tasks_per_child": worker.max_tasks_per_child,
    "task_events": worker.task_events,
    "loaded": sorted({m.split('.')[0] for m in sys.modules} & set(%r)),
}))
"""


def test_the_worker_is_configured_as_the_command_line_had_it_without_its_plugins(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "TUNEPOOL_HOME": str(tmp_path),
        "TUNEPOOL_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "TUNEPOOL_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE % (CLI_ONLY,),
            "--queues",
            "tunepool.worker.probe",
            "--concurrency",
            "3",
            "--hostname",
            "probe@%h",
            "--loglevel",
            "warning",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    built = json.loads(out.stdout.strip().splitlines()[-1])
    assert built["hostname"].startswith("probe@") and "%h" not in built["hostname"]
    assert built["queues"] == ["tunepool.worker.probe"]
    assert built["concurrency"] == 3
    # One job per process, and events for Flower: the app's configuration, not flags.
    assert built["max_tasks_per_child"] == 1
    assert built["task_events"] is True
    assert built["loaded"] == []
