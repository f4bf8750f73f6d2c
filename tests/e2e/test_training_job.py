"""A REST job runs end to end on real worker processes; crashes and duplicates are survived."""

from __future__ import annotations

import io
import os

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from api.app import create_app
from scheduler.ticks import run_reaper
from storage.blobs import verify
from storage.db import transaction
from storage.models import Checkpoint, Job, JobEvent, JobRun, ModelVersion, StoredObject
from storage.teams import create_team
from tests.conftest import TINY_BASE_MODEL
from tests.e2e.conftest import WorkerProcs, wait_until
from tunepool.messages import TRAIN_TASK, worker_queue
from tunepool.synthetic import conll_text

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def tiny_model(tiny_base_models: dict[str, str]) -> str:
    """The tiny model's allow-listed name (the ``live`` platforms list it)."""
    return TINY_BASE_MODEL


def api(live: WorkerProcs) -> tuple[FlaskClient, dict[str, str]]:
    client = create_app(platform=live.platform).test_client()
    with transaction(live.platform.sessions) as session:
        _, key = create_team(session, "e2e", role="member")
    return client, {"Authorization": f"Bearer {key}"}


def upload(client: FlaskClient, headers: dict[str, str], sentences: int, seed: int) -> str:
    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "task": "token-classification",
            "format": "conll",
            "name": f"ner-{seed}",
            "file": (io.BytesIO(conll_text(sentences, seed=seed).encode()), "ner.conll"),
        },
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def job_state(live: WorkerProcs, job_id: str) -> Job:
    with live.platform.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def submit(
    client: FlaskClient,
    headers: dict[str, str],
    model: str,
    train: str,
    validation: str,
    **hyper: object,
) -> str:
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "task": "token-classification",
            "base_model": model,
            "train_dataset": train,
            "validation_dataset": validation,
            "model_name": "e2e-ner",
            "hyperparameters": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, **hyper},
        },
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


@pytest.mark.parametrize(
    "e2e_database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_job_succeeds_with_reports_and_a_checksummed_model(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, headers = api(live)
    worker = live.start("wA")
    train, validation = upload(client, headers, 120, 1), upload(client, headers, 30, 2)
    job_id = submit(client, headers, tiny_model, train, validation)
    wait_until(
        lambda: job_state(live, job_id).state in ("succeeded", "failed"),
        180,
        "the job to finish",
        on_tick=lambda: run_reaper(live.platform),
    )
    job = job_state(live, job_id)
    assert job.state == "succeeded", (job.error, live.log("wA")[-3000:])
    # The worker, and the job processes it forks, yield the CPU (worker_nice, 19 by
    # default: the most the kernel allows).
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == 19
    shown = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    report = shown["metrics"]["report"]
    assert report, shown["metrics"]
    with live.platform.sessions() as session:
        model = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
        assert model is not None and model.name == "e2e-ner" and model.version == 1
        objects = session.scalars(
            select(StoredObject).where(StoredObject.key.startswith(model.prefix))
        ).all()
        assert any(o.key.endswith("config.json") for o in objects)
        assert all(verify(session, live.platform.store, o.key) for o in objects)
        states = [
            e.new_state
            for e in session.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.kind == "state")
                .order_by(JobEvent.id)
            )
        ]
        assert states == ["pending", "queued", "running", "succeeded"]
        assert (
            session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "progress")
            ).first()
            is not None
        )


def test_sigkill_of_the_worker_resumes_from_the_last_checkpoint(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, headers = api(live)
    live.start("wA")
    train, validation = upload(client, headers, 600, 1), upload(client, headers, 40, 2)
    job_id = submit(
        client, headers, tiny_model, train, validation, epochs=3, checkpoint_every_steps=20
    )

    def checkpointed() -> bool:
        with live.platform.sessions() as session:
            return session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id)) is not None

    wait_until(checkpointed, 180, "a first checkpoint")
    assert job_state(live, job_id).state == "running", "the job finished before it could be killed"
    live.kill("wA")

    wait_until(
        lambda: job_state(live, job_id).state == "pending",
        60,
        "the reaper to return the job to pending",
        on_tick=lambda: run_reaper(live.platform),
    )
    live.start("wB")
    wait_until(
        lambda: job_state(live, job_id).state in ("succeeded", "failed"),
        300,
        "the resumed job to finish",
        on_tick=lambda: run_reaper(live.platform),
    )
    job = job_state(live, job_id)
    assert job.state == "succeeded", (job.error, live.log("wB")[-3000:])
    assert job.attempt == 2
    with live.platform.sessions() as session:
        runs = session.scalars(
            select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.attempt)
        ).all()
    # The reaper finds either the expired lease or the silent worker first; both resume.
    assert [r.worker_name for r in runs] == ["wA", "wB"]
    assert runs[0].outcome in ("lease_expired", "worker_lost")
    assert runs[1].outcome == "succeeded"
    first, second = runs
    # No two runners held the lease at once: the first lease ended before the second claim.
    assert first.ended_at is not None and first.ended_at <= second.started_at
    assert second.start_step > 0, "the resumed run started over from step 0"


def test_the_same_message_delivered_twice_starts_one_run(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, headers = api(live)
    train, validation = upload(client, headers, 60, 1), upload(client, headers, 20, 2)
    job_id = submit(client, headers, tiny_model, train, validation)
    # The worker registers and the job is admitted to it; then deliver the message again.
    live.start("wA", slots=2)
    wait_until(lambda: job_state(live, job_id).state != "pending", 60, "admission to wA")
    live.platform.celery.send_task(TRAIN_TASK, args=[job_id], queue=worker_queue("wA"))
    live.platform.celery.send_task(TRAIN_TASK, args=[job_id], queue=worker_queue("wA"))
    wait_until(
        lambda: job_state(live, job_id).state in ("succeeded", "failed"),
        180,
        "the job to finish",
        on_tick=lambda: run_reaper(live.platform),
    )
    assert job_state(live, job_id).state == "succeeded"
    wait_until(
        lambda: live.log("wA").count("'not_claimed'") >= 2,
        30,
        "both duplicate deliveries to be refused",
    )
    with live.platform.sessions() as session:
        runs = session.scalars(select(JobRun).where(JobRun.job_id == job_id)).all()
    assert len(runs) == 1
