"""One envelope runs every job kind (DESIGN §13): every job task admission publishes
runs the job through ``worker.envelope.run_job``, every job kind has one registered
engine, only the envelope claims, and the engines know no Celery, Flask or SQL."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from api.schemas import JobCreate
from commands.redis_server import RedisServer
from scheduler.dispatch import TASK_FOR_TYPE
from storage.db import transaction
from storage.job_factory import JobOrder, create
from storage.models import Job
from storage.platform import Platform
from storage.schema import upgrade
from storage.states import JobState, transition
from storage.teams import create_team
from tunepool.settings import Settings
from worker.engines import causal_lm, encoder
from worker.engines.kinds import registration_for_job
from worker.engines.registry import UnknownJobKind, register, registration_for, registrations

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("api", "worker", "scheduler", "storage", "tunepool")
ENGINES = ("worker/engines", "worker/training", "worker/inference")


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_every_job_type_admission_publishes_has_a_registered_engine() -> None:
    finetune_tasks = typing.get_args(JobCreate.model_fields["task"].annotation)
    assert "causal-lm" in finetune_tasks
    for task in finetune_tasks:
        found = registration_for("finetune", task)
        assert found.resumable, task  # fine-tunes checkpoint: preempt and shutdown resume
        assert found.engine is (causal_lm.train if task == "causal-lm" else encoder.train)
    for job_type in set(TASK_FOR_TYPE) - {"finetune"}:  # the others run whatever the task
        assert registration_for(job_type, "token-classification").job_type == job_type
    # Nothing registered that admission could never publish.
    assert {r.job_type for r in registrations()} == {*TASK_FOR_TYPE, "noop"}


def test_a_kind_registers_once_and_an_unknown_kind_is_named() -> None:
    with pytest.raises(ValueError, match="finetune/causal-lm is already registered"):
        register("finetune", causal_lm.train, tasks=("causal-lm",))
    with pytest.raises(UnknownJobKind, match="no engine is registered for finetune"):
        registration_for("finetune", "speech-to-text")


def test_only_the_envelope_claims_a_job() -> None:
    claimers = [
        str(path.relative_to(ROOT))
        for path in _python_files(*PRODUCTION)
        if "storage.lease.claim" in _imports(path)
    ]
    assert claimers == ["worker/envelope/run.py"]


def test_engines_import_no_celery_flask_sql_or_the_envelope() -> None:
    banned = ("celery", "flask", "sqlalchemy", "api", "scheduler", "worker.envelope")
    allowed_storage = {"storage.attempts", "storage.attempts.StopReason"}
    for path in _python_files(*ENGINES):
        for module in _imports(path):
            top_level_hit = any(module == b or module.startswith(f"{b}.") for b in banned)
            storage_hit = module.split(".")[0] == "storage" and module not in allowed_storage
            assert not (top_level_hit or storage_hit), f"{path.relative_to(ROOT)} imports {module}"


def test_no_worker_module_imports_another_ones_private_names() -> None:
    for path in _python_files("worker"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("worker"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(ROOT)} imports {private} from {node.module}"


# Each job task, called by its name as a worker process calls it, in a process of its own
# (the tasks read the platform from the environment).
RUN_TASKS = """
import json, sys
import commands.celery_app
from worker.tasks import JobFailed
app = commands.celery_app.app
app.loader.import_default_modules()  # as `celery -A commands.celery_app` does
outcomes = {}
for name, job in json.loads(sys.argv[1]):
    try:
        outcomes[job] = app.tasks[name](job)
    except JobFailed:  # raised once the failure is recorded (Flower shows FAILURE)
        outcomes[job] = "failed"
print(json.dumps(outcomes))
"""


def test_every_job_task_runs_its_job_through_the_envelope(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        redis_url=redis_server.url,
        allow_noop_engine=True,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    orders = {
        # A fine-tune the no-op engine runs to success (no torch), and one of each other
        # kind whose inputs are gone: the envelope fails it with the inputs' own message.
        "finetune": ("noop", {"base_model": "noop:succeed"}),
        "causal-lm": ("causal-lm", {"train_dataset": "ds_gone"}),
        "inference": ("token-classification", {"model_version_id": "mv_gone"}),
        "compress": ("token-classification", {"model_version_id": "mv_gone"}),
        "evaluate": ("token-classification", {"model_version_id": "mv_gone", "metric": "f1"}),
    }
    calls: list[tuple[str, str]] = []
    with transaction(platform.sessions) as session:
        team, _ = create_team(session, "alpha")
        for kind, (task, spec) in orders.items():
            job_type = "finetune" if kind == "causal-lm" else kind
            order = JobOrder(team.id, job_type, task, spec, base_model=spec.get("base_model"))
            job = create(session, settings, order)
            assert isinstance(job, Job), job
            assert transition(
                session,
                job.id,
                JobState.QUEUED,
                reason="placed by the test",
                values={"worker_name": "w1", "queued_at": time.time()},
            )
            calls.append((TASK_FOR_TYPE[job_type], job.id))
    env = {
        "PATH": "",
        "PYTHONPATH": str(ROOT),
        "TUNEPOOL_HOME": str(tmp_path),
        "TUNEPOOL_DATABASE_URL": settings.database_url,
        "TUNEPOOL_REDIS_URL": redis_server.url,
        "TUNEPOOL_WORKER_NAME": "w1",
        "TUNEPOOL_ALLOW_NOOP_ENGINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", RUN_TASKS, json.dumps(calls)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    with platform.sessions() as session:
        jobs = {job_id: session.get(Job, job_id) for _, job_id in calls}
    finished = {
        kind: (outcomes[job_id], job.state, job.error)
        for kind, (_, job_id) in zip(orders, calls, strict=True)
        if (job := jobs[job_id]) is not None
    }
    platform.close()
    assert finished == {
        "finetune": ("succeeded", "succeeded", None),
        "causal-lm": ("failed", "failed", "dataset ds_gone not found"),
        "inference": ("failed", "failed", "model version mv_gone is gone"),
        "compress": ("failed", "failed", "model version mv_gone is gone"),
        "evaluate": ("failed", "failed", "model version mv_gone is gone"),
    }


def test_a_noop_base_model_runs_the_noop_engine_only_where_allowed() -> None:
    from worker.engines.context import JobView

    job = JobView("job_1", "team_1", "finetune", "ner", {"base_model": "noop:succeed"}, None, 1)
    assert registration_for_job(job, allow_noop_engine=True).job_type == "noop"
    assert registration_for_job(job, allow_noop_engine=False).engine is encoder.train
