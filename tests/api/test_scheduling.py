"""Scheduling as a submitter sees it: run time estimates in backfill and estimated starts."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.pool import WorkerInfo, register
from storage.db import transaction
from storage.models import Job, ModelVersion, Team
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.platform import Platform


def _worker(platform: Platform, name: str = "w1", slots: int = 1) -> None:
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo(name, "host", f"tunepool.worker.{name}", slots))


def _finetune(
    client: FlaskClient, headers: dict[str, str], train: str, **extra: Any
) -> tuple[int, dict[str, Any]]:
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": train, **extra},
    )
    return resp.status_code, resp.get_json()


def _model(platform: Platform, team: str, name: str = "ner") -> None:
    """A registered version (its files are not needed to submit jobs that use it)."""
    with transaction(platform.sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == team))
        assert team_id is not None
        session.add(
            ModelVersion(
                team_id=team_id,
                name=name,
                version=1,
                task="token-classification",
                prefix=f"teams/{team_id}/models/{name}/1/",
                base_model="tiny",
            )
        )


def _starts_in(job: dict[str, Any]) -> float:
    assert job["estimated_start"] is not None, job
    return datetime.fromisoformat(job["estimated_start"]).timestamp() - time.time()


# -- estimated_runtime_s (issue 20 item 7) -----------------------------------------------


def test_estimated_runtime_is_stored_and_sets_the_estimated_starts_behind_it(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    _worker(platform, slots=1)
    alpha = make_key("alpha")
    train = upload_ner(client, alpha)["id"]
    status, first = _finetune(client, alpha, train, estimated_runtime_s=5000)
    assert status == 201, first
    assert first["state"] == "queued" and first["spec"]["estimated_runtime_s"] == 5000
    _, second = _finetune(client, alpha, train, estimated_runtime_s=3000)
    _, third = _finetune(client, alpha, train)
    second = client.get(f"/v1/jobs/{second['id']}", headers=alpha).get_json()
    third = client.get(f"/v1/jobs/{third['id']}", headers=alpha).get_json()
    # The second starts when the first is expected to end, the third after both.
    assert abs(_starts_in(second) - 5000) < 60
    assert abs(_starts_in(third) - 8000) < 60


def test_a_running_jobs_estimate_counts_from_its_start(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    _worker(platform, slots=1)
    alpha = make_key("alpha")
    train = upload_ner(client, alpha)["id"]
    _, first = _finetune(client, alpha, train, estimated_runtime_s=5000)
    with transaction(platform.sessions) as session:
        row = session.get(Job, first["id"])
        assert row is not None
        row.state, row.started_at = "running", time.time() - 4000  # ran 4000 of its 5000 s
    _, second = _finetune(client, alpha, train)
    assert abs(_starts_in(second) - 1000) < 60


def test_backfill_starts_a_job_only_if_its_estimate_ends_before_the_reservation(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    _worker(platform, slots=2)
    alpha = make_key("alpha")
    train = upload_ner(client, alpha)["id"]
    _, running = _finetune(client, alpha, train, estimated_runtime_s=1000)
    assert running["state"] == "queued"
    # Needs both slots: reserved for when the running job should end, in 1000 s.
    _, big = _finetune(client, alpha, train, resources={"gpus": 2})
    assert big["state"] == "pending"
    # The free slot goes to a job that ends before then, not to one that would delay it
    # (600 s, the default estimate, would have let it in).
    _, long = _finetune(client, alpha, train, estimated_runtime_s=1500)
    _, short = _finetune(client, alpha, train, estimated_runtime_s=300)
    assert long["state"] == "pending" and short["state"] == "queued", (long, short)


def test_model_jobs_take_an_estimate_and_bad_estimates_name_the_field(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    _model(platform, "alpha")
    dataset = upload_ner(client, alpha)["id"]
    bodies = {
        "inference": {"type": "inference", "model": "ner:1", "dataset": dataset},
        "compress": {"type": "compress", "model": "ner:1"},
    }
    for kind, body in bodies.items():
        resp = client.post("/v1/jobs", headers=alpha, json={**body, "estimated_runtime_s": 90})
        assert resp.status_code == 201, (kind, resp.get_json())
        assert resp.get_json()["spec"]["estimated_runtime_s"] == 90
    for bad in (0, -5, "soon", 1e9):
        status, body = _finetune(client, alpha, dataset, estimated_runtime_s=bad)
        assert status == 422 and body["error"]["field"] == "estimated_runtime_s", (bad, body)
