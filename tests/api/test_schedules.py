"""Retrain schedules: CRUD and validation, once per due time, champion/challenger decisions.

The promotion tests use tiny models whose predictions are known (every word tagged
with one label), scored by the real serving-path scorer on a fixed evaluation set:
a B-PER model gets entity F1 2/3 on it (6 words predicted, 3 gold entities, all
found), an all-O model 0. The retrain job's training is replaced by storing such a
model as its output; the evaluation runs in the worker's own runner.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from scheduler.alerts.rules import RULES, Context
from scheduler.model_updates import fire, fire_due, run_model_updates
from storage.db import transaction
from storage.lease import claim
from storage.models import Job
from storage.platform import Platform
from storage.schedules import Schedule, ScheduleRun
from storage.states import JobState, transition
from tests.api.conftest import KeyFactory, upload_ner
from tests.api.models_helpers import publish_version
from tests.conftest import TINY_BASE_MODEL
from tests.inference.tiny import NER_LABELS, tiny_model_dir
from worker.envelope import run_job

EVAL_CONLL = "Alice B-PER\nwent O\nhome O\n\nBob B-PER\nsaw O\nMaria B-PER\n\n"
GOOD_F1 = 2 / 3  # B-PER everywhere: precision 3/6, recall 3/3


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy-models")
    return {tag: tiny_model_dir(root / tag, NER_LABELS, bias_to=tag) for tag in ("B-PER", "O")}


def _schedule_body(evaluation: str, **extra: Any) -> dict[str, Any]:
    return {
        "model_name": "ner",
        "dataset_name": "ner",
        "cron": "0 3 * * *",
        "evaluation_dataset": evaluation,
        "promotion": {"metric": "f1", "min_margin": 0.1},
        **extra,
    }


def _setup(client: FlaskClient, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    assert upload_ner(client, headers, name="ner")["status"] == 201
    evaluation = upload_ner(client, headers, text=EVAL_CONLL, name="ner-eval")
    assert evaluation["status"] == 201, evaluation
    resp = client.post(
        "/v1/schedules", headers=headers, json=_schedule_body(evaluation["id"], **extra)
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _backdate(platform: Platform, schedule_id: str, seconds: float = 3600) -> None:
    with transaction(platform.sessions) as session:
        session.execute(
            update(Schedule)
            .where(Schedule.id == schedule_id)
            .values(created_at=time.time() - seconds)
        )


def _runs(platform: Platform, schedule_id: str) -> list[ScheduleRun]:
    with platform.sessions() as session:
        return list(
            session.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id))
        )


def _retrain_jobs(platform: Platform) -> int:
    with platform.sessions() as session:
        return int(
            session.scalar(select(func.count()).select_from(Job).where(Job.type == "finetune")) or 0
        )


def _run_job_as_worker(platform: Platform, job_id: str) -> str:
    """What admission and a worker's claim do, without a Celery worker."""
    with transaction(platform.sessions) as session:
        assert transition(
            session,
            job_id,
            JobState.QUEUED,
            reason="test placement",
            expect={JobState.PENDING},
            values={"worker_name": "w1", "queued_at": time.time()},
        )
    return "w1"


def _finish_retrain(platform: Platform, job_id: str, model_dir: Path) -> int:
    """The retrain job succeeds with ``model_dir`` as its output version."""
    worker = _run_job_as_worker(platform, job_id)
    mv = publish_version(platform, "alpha", "ner", model_dir)
    with transaction(platform.sessions) as session:
        claimed = claim(session, job_id, worker, "test-owner", 60)
        assert claimed is not None
        assert transition(
            session,
            job_id,
            JobState.SUCCEEDED,
            reason="trained (test)",
            expect={JobState.RUNNING},
            lease_owner="test-owner",
            values={"model_version_id": mv.id},
        )
    return mv.version


def _retrain_and_decide(
    client: FlaskClient,
    headers: dict[str, str],
    platform: Platform,
    schedule_id: str,
    model_dir: Path,
) -> dict[str, Any]:
    fired = client.post(f"/v1/schedules/{schedule_id}/run", headers=headers)
    assert fired.status_code == 201, fired.get_json()
    run = fired.get_json()
    assert run["state"] == "training" and run["job_id"]
    _finish_retrain(platform, run["job_id"], model_dir)
    assert run["id"] in run_model_updates(platform)["advanced"]
    with platform.sessions() as session:
        row = session.get(ScheduleRun, run["id"])
        assert row is not None and row.state == "evaluating"
        evaluate_job = row.evaluate_job_id
    assert evaluate_job
    worker = _run_job_as_worker(platform, evaluate_job)
    assert run_job(platform, evaluate_job, worker) == "succeeded"
    runs = client.get(f"/v1/schedules/{schedule_id}/runs", headers=headers).get_json()["data"]
    return next(r for r in runs if r["id"] == run["id"])


def _production(client: FlaskClient, headers: dict[str, str]) -> int | None:
    body = client.get("/v1/models/ner", headers=headers).get_json()
    return body["aliases"].get("production")


def test_better_candidate_is_promoted_worse_is_kept_alerted_and_rollback_works(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, models: dict[str, Path]
) -> None:
    alpha = make_key("alpha")
    schedule = _setup(client, alpha)

    # No production yet: the first candidate (all-O, F1 0) is promoted.
    first = _retrain_and_decide(client, alpha, platform, schedule["id"], models["O"])
    assert first["outcome"] == "promoted", first
    assert first["candidate"] == {"version": 1, "score": 0.0}
    assert first["champion"] == {"version": None, "score": None}
    assert _production(client, alpha) == 1

    # A better candidate (F1 2/3 vs 0, margin 0.1) moves production.
    better = _retrain_and_decide(client, alpha, platform, schedule["id"], models["B-PER"])
    assert better["outcome"] == "promoted", better
    assert better["candidate"]["version"] == 2
    assert better["candidate"]["score"] == pytest.approx(GOOD_F1)
    assert better["champion"] == {"version": 1, "score": 0.0}
    assert better["metric"] == "f1" and better["min_margin"] == 0.1
    assert better["scores"]["candidate"]["precision"] == pytest.approx(0.5)
    assert _production(client, alpha) == 2

    # A worse one (0 vs 2/3) is recorded with both scores and production stays.
    worse = _retrain_and_decide(client, alpha, platform, schedule["id"], models["O"])
    assert worse["outcome"] == "kept", worse
    assert worse["candidate"] == {"version": 3, "score": 0.0}
    assert worse["champion"]["version"] == 2
    assert worse["champion"]["score"] == pytest.approx(GOOD_F1)
    assert "minimum margin 0.1" in worse["reason"]
    assert _production(client, alpha) == 2

    # The alert rule names the worse run, and only it.
    with platform.sessions() as session:
        firing = RULES["retrain_worse"](Context(session, platform.settings, None, time.time()))
    assert [f.subject for f in firing] == [f"schedule_run:{worse['id']}"]
    assert firing[0].details["candidate_score"] == 0.0
    assert "below production" in firing[0].summary

    # The promotion is an ordinary alias move: rollback walks it back.
    history = client.get("/v1/models/ner/aliases/production/history", headers=alpha).get_json()
    assert [e["new_version"] for e in history["data"]] == [1, 2]
    assert history["data"][1]["actor"] == f"schedule:{schedule['id']}"
    resp = client.post("/v1/models/ner/aliases/production/rollback", headers=alpha, json={})
    assert resp.status_code == 200, resp.get_json()
    assert _production(client, alpha) == 1


def test_a_schedule_fires_once_per_due_time_across_ticks_and_concurrent_beats(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    schedule = _setup(client, alpha, cron="* * * * *")
    _backdate(platform, schedule["id"])
    minute = (int(time.time()) // 60) * 60.0

    # Two ticks in the same minute (a retried tick, a second beat): one run, one job.
    assert len(run_model_updates(platform, now=minute + 5)["fired"]) == 1
    assert run_model_updates(platform, now=minute + 35)["fired"] == []
    assert len(_runs(platform, schedule["id"])) == 1
    # The unique constraint holds even when the cheap skip is bypassed.
    assert fire(platform, schedule["id"], minute) is None

    # Concurrent beats racing on the next due time: exactly one wins.
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def beat() -> None:
        barrier.wait()
        results.append(fire_due(platform, minute + 65))

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    runs = _runs(platform, schedule["id"])
    assert sorted(r.fire_time for r in runs) == [minute, minute + 60]
    assert all(r.state == "training" and r.job_id for r in runs)
    assert _retrain_jobs(platform) == 2

    # The job is a normal finetune of the newest "ner" upload, pending admission.
    newer = upload_ner(client, alpha, name="ner")
    run_model_updates(platform, now=minute + 125)
    job_id = max(_runs(platform, schedule["id"]), key=lambda r: r.fire_time).job_id
    job = client.get(f"/v1/jobs/{job_id}", headers=alpha).get_json()
    assert job["type"] == "finetune" and job["state"] == "pending"
    assert job["spec"]["train_dataset"] == newer["id"]
    assert job["spec"]["base_model"] == "all-MiniLM-L6-v2"  # no production yet


def test_new_dataset_trigger_fires_once_per_upload(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    schedule = _setup(client, alpha, trigger="new_dataset")
    assert schedule["next_fire_at"] is None
    # The upload that existed when the schedule was made is not new.
    assert run_model_updates(platform)["fired"] == []
    uploaded = upload_ner(client, alpha, name="ner")
    assert len(run_model_updates(platform)["fired"]) == 1
    assert run_model_updates(platform)["fired"] == []
    runs = _runs(platform, schedule["id"])
    assert [(r.trigger, r.dataset_id) for r in runs] == [("new_dataset", uploaded["id"])]


def test_a_refused_retrain_is_recorded_as_failed(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    schedule = _setup(client, alpha)
    from storage.models import Team

    with transaction(platform.sessions) as session:
        session.execute(update(Team).where(Team.name == "alpha").values(queue_state="draining"))
    run = client.post(f"/v1/schedules/{schedule['id']}/run", headers=alpha).get_json()
    assert run["outcome"] == "failed" and "draining" in run["reason"]
    assert run["job_id"] is None and _retrain_jobs(platform) == 0


def test_validation_names_the_field(client: FlaskClient, make_key: KeyFactory) -> None:
    alpha = make_key("alpha")
    assert upload_ner(client, alpha, name="ner")["status"] == 201
    evaluation = upload_ner(client, alpha, text=EVAL_CONLL, name="ner-eval")["id"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * *"}, "cron"),
        ({"cron": None}, "cron"),
        ({"dataset_name": "missing"}, "dataset_name"),
        ({"evaluation_dataset": "ds_missing"}, "evaluation_dataset"),
        ({"promotion": {"metric": "accuracy"}}, "promotion.metric"),
        ({"promotion": {"metric": "f1", "min_margin": 2}}, "promotion.min_margin"),
        ({"hyperparameters": {"epochs": -1}}, "hyperparameters.epochs"),
        ({"base_model": "../etc"}, "base_model"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in cases:
        resp = client.post(
            "/v1/schedules", headers=alpha, json={**_schedule_body(evaluation), **change}
        )
        assert resp.status_code == 422, (change, resp.get_json())
        error = resp.get_json()["error"]
        assert error["field"] == field, (change, error)
    created = client.post("/v1/schedules", headers=alpha, json=_schedule_body(evaluation))
    assert created.status_code == 201
    sid = created.get_json()["id"]
    bad = client.patch(f"/v1/schedules/{sid}", headers=alpha, json={"cron": "0 25 * * *"})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "cron"


def test_crud_roles_and_team_isolation(client: FlaskClient, make_key: KeyFactory) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    viewer = make_key("alpha", role="viewer")
    schedule = _setup(client, alpha)
    sid = schedule["id"]
    assert schedule["name"] == "ner" and schedule["task"] == "token-classification"
    assert schedule["promotion"] == {"metric": "f1", "min_margin": 0.1}
    assert schedule["next_fire_at"].endswith("03:00:00Z")

    assert client.get("/v1/schedules", headers=viewer).get_json()["data"][0]["id"] == sid
    assert client.get(f"/v1/schedules/{sid}/runs", headers=viewer).get_json()["data"] == []
    body = {"enabled": False}
    assert client.patch(f"/v1/schedules/{sid}", headers=viewer, json=body).status_code == 403
    assert client.post(f"/v1/schedules/{sid}/run", headers=viewer).status_code == 403

    for method, path in (
        ("get", f"/v1/schedules/{sid}"),
        ("get", f"/v1/schedules/{sid}/runs"),
        ("patch", f"/v1/schedules/{sid}"),
        ("delete", f"/v1/schedules/{sid}"),
        ("post", f"/v1/schedules/{sid}/run"),
    ):
        resp = getattr(client, method)(path, headers=beta, json=body)
        assert resp.status_code == 404, (method, path)
    assert client.get("/v1/schedules", headers=beta).get_json()["data"] == []

    patched = client.patch(
        f"/v1/schedules/{sid}", headers=alpha, json={"cron": "30 4 * * 1", "enabled": False}
    ).get_json()
    assert patched["cron"] == "30 4 * * 1" and patched["enabled"] is False
    assert patched["next_fire_at"] is None
    dup = client.post(
        "/v1/schedules", headers=alpha, json=_schedule_body(schedule["evaluation_dataset"])
    )
    assert dup.status_code == 409
    assert client.delete(f"/v1/schedules/{sid}", headers=alpha).status_code == 200
    assert client.get(f"/v1/schedules/{sid}", headers=alpha).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_real_retrain_continues_from_production_and_is_judged(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """The real runner trains; its version is scored against production by the worker."""

    alpha = make_key("alpha")
    schedule = _setup(
        client,
        alpha,
        base="base_model",
        base_model=TINY_BASE_MODEL,
        hyperparameters={"epochs": 1, "batch_size": 8},
    )
    decisions = []
    for _ in range(2):
        run = client.post(f"/v1/schedules/{schedule['id']}/run", headers=alpha).get_json()
        assert run["state"] == "training", run
        worker = _run_job_as_worker(platform, run["job_id"])
        assert run_job(platform, run["job_id"], worker) == "succeeded"
        run_model_updates(platform)
        with platform.sessions() as session:
            row = session.get(ScheduleRun, run["id"])
            assert row is not None and row.evaluate_job_id
            evaluate_job = row.evaluate_job_id
        worker = _run_job_as_worker(platform, evaluate_job)
        assert run_job(platform, evaluate_job, worker) == "succeeded"
        runs = client.get(f"/v1/schedules/{schedule['id']}/runs", headers=alpha).get_json()
        decisions.append(next(r for r in runs["data"] if r["id"] == run["id"]))
        # From now on each retrain starts from the production version.
        client.patch(f"/v1/schedules/{schedule['id']}", headers=alpha, json={"base": "production"})
    first, second = decisions
    assert first["outcome"] == "promoted" and first["champion"]["version"] is None
    assert first["base_model"] == TINY_BASE_MODEL
    assert second["base_model"] == "ner:1"
    assert second["candidate"]["version"] == 2 and second["champion"]["version"] == 1
    assert second["candidate"]["score"] is not None
    assert second["champion"]["score"] is not None
    assert second["outcome"] in ("promoted", "kept")
    expected = 2 if second["outcome"] == "promoted" else 1
    assert _production(client, alpha) == expected
