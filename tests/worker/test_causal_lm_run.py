"""A chat fine-tune is preempted and resumed like an encoder's: the envelope records the
stop checkpoint, the job goes back to pending, and the next attempt continues from that
step to the same end instead of starting over (in-process; the e2e test runs a worker)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import select

from storage.db import transaction
from storage.job_factory import JobOrder, create
from storage.models import Checkpoint, Job, JobRun, ModelVersion
from storage.platform import Platform
from storage.schema import upgrade
from storage.states import JobState, transition
from storage.teams import create_team
from tests.training.causal_lm_fixtures import colour_chats, store_chat_dataset, write_chats
from tunepool.settings import Settings
from worker.envelope import run_job

S = JobState


def _place(platform: Platform, job_id: str) -> None:
    with transaction(platform.sessions) as session:
        assert transition(
            session,
            job_id,
            S.QUEUED,
            reason="placed by the test",
            expect={S.PENDING},
            values={"worker_name": "w1", "queued_at": time.time()},
        )


def _error(platform: Platform, job_id: str) -> str | None:
    with platform.sessions() as session:
        job = session.get(Job, job_id)
        return job.error if job is not None else None


def _preempt_once_running(platform: Platform, job_id: str) -> threading.Thread:
    """What an admission pass does for a higher-priority job: ask the run to yield, here
    as soon as it is claimed (its first stop check, after its first step, sees it)."""

    def preempt() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with transaction(platform.sessions) as session:
                if transition(
                    session,
                    job_id,
                    S.PREEMPTING,
                    reason="preempted for job_hi (priority high, team beta)",
                    expect={S.RUNNING},
                    values={"reason_code": "priority", "reason": "preempted for job_hi"},
                ):
                    return
            time.sleep(0.005)

    thread = threading.Thread(target=preempt, daemon=True)
    thread.start()
    return thread


def test_a_preempted_chat_fine_tune_resumes_from_its_checkpoint(
    tmp_path: Path, tiny_llama: Path
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        object_store_url=(tmp_path / "objects").as_uri(),
        base_models={"tiny-llama": str(tiny_llama)},
        lease_renew_s=0.2,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    with transaction(platform.sessions) as session:
        team, _ = create_team(session, "alpha")
    path = write_chats(tmp_path / "chats.jsonl", colour_chats(40))
    dataset = store_chat_dataset(platform.sessions, platform.store, "alpha", path)
    hyperparameters = {
        "epochs": 2,
        "batch_size": 4,
        "max_length": 128,
        "lora_rank": 4,
        "checkpoint_every_steps": 5,
        "validation_split": 0.0,
        "generation_eval_limit": 0,
        "sample_generations": 0,
    }
    spec = {
        "base_model": "tiny-llama",
        "train_dataset": dataset,
        "hyperparameters": hyperparameters,
    }
    with transaction(platform.sessions) as session:
        job = create(
            session,
            settings,
            JobOrder(team.id, "finetune", "causal-lm", spec, base_model="tiny-llama"),
        )
        assert isinstance(job, Job), job
        job_id = job.id
    try:
        _place(platform, job_id)
        asker = _preempt_once_running(platform, job_id)
        assert run_job(platform, job_id, "w1") == "preempted", _error(platform, job_id)
        asker.join(5)
        with platform.sessions() as session:
            waiting = session.get(Job, job_id)
            assert waiting is not None and waiting.state == "pending", waiting.state
            assert waiting.reason_code == "priority" and waiting.lease_owner is None
            stop_step = session.scalar(
                select(Checkpoint.step)
                .where(Checkpoint.job_id == job_id)
                .order_by(Checkpoint.step.desc())
            )
            assert stop_step is not None and 0 < stop_step < 20

        _place(platform, job_id)
        assert run_job(platform, job_id, "w1") == "succeeded", _error(platform, job_id)
        with platform.sessions() as session:
            done = session.get(Job, job_id)
            assert done is not None and done.state == "succeeded"
            # 40 examples, 4 a step, 2 epochs: the same end as an uninterrupted run.
            assert done.metrics["global_step"] == 20
            runs = session.scalars(
                select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.attempt)
            ).all()
            assert [(r.outcome, r.start_step) for r in runs] == [
                ("preempted", 0),
                ("succeeded", stop_step),
            ]
            version = session.get(ModelVersion, done.model_version_id)
            assert version is not None and version.artifact == "adapter"
    finally:
        platform.close()
