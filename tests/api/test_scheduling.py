"""Scheduling as a submitter sees it: run time estimates in backfill and estimated starts;
every team cap and the draining queue, for every type of job and whoever creates it."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from storage.db import transaction
from storage.models import Job, ModelVersion, Team
from storage.platform import Platform
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.messages import worker_queue
from tunepool.redis_client import redis_client
from tunepool.startup_times import STARTUP_KEY, record_startup


def _worker(platform: Platform, name: str = "w1", slots: int = 1) -> None:
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo(name, "host", worker_queue(name), slots))


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


def test_a_running_jobs_reported_eta_counts_from_when_it_was_reported(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    _worker(platform, slots=1)
    alpha = make_key("alpha")
    train = upload_ner(client, alpha)["id"]
    _, first = _finetune(client, alpha, train)
    with transaction(platform.sessions) as session:
        row = session.get(Job, first["id"])
        assert row is not None
        # 1000 s left, said 400 s ago (then it went quiet: an evaluation pass).
        row.state, row.started_at = "running", time.time() - 500
        row.progress = {"step": 50, "eta_s": 1000.0, "at": time.time() - 400}
    _, second = _finetune(client, alpha, train)
    assert abs(_starts_in(second) - 600) < 20


def test_estimated_starts_count_the_workers_measured_start_up_time(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """A job admitted to w1 trains only once w1 has started its process (40 s here); the
    job behind it waits for that and for its own start on w1 (issue 24, item 16)."""
    _worker(platform, slots=1)
    board = redis_client(platform.settings.redis_url)
    board.delete(STARTUP_KEY)
    try:
        assert record_startup(board, "w1", 40.0) == 40.0
        alpha = make_key("alpha")
        train = upload_ner(client, alpha)["id"]
        _, first = _finetune(client, alpha, train, estimated_runtime_s=5000)
        assert first["state"] == "queued"
        _, second = _finetune(client, alpha, train)
        # 40 s for the first to start, its 5000 s, then 40 s for the second to start.
        assert abs(_starts_in(second) - 5080) < 20
    finally:
        board.delete(STARTUP_KEY)


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


# -- every cap and the draining queue, for every job type (issue 20 items 4 and 5) ------


def _team(platform: Platform, name: str, **values: Any) -> None:
    with transaction(platform.sessions) as session:
        team = session.scalar(select(Team).where(Team.name == name))
        assert team is not None
        for key, value in values.items():
            setattr(team, key, value)


def _submissions(
    client: FlaskClient, headers: dict[str, str], platform: Platform
) -> dict[str, tuple[str, dict[str, Any]]]:
    """One submission of each job type a member can send: (path, body)."""
    _model(platform, "alpha")
    dataset = upload_ner(client, headers)["id"]
    evaluation = upload_ner(client, headers, name="ner-eval")["id"]
    return {
        "finetune": (
            "/v1/jobs",
            {"task": "token-classification", "train_dataset": dataset},
        ),
        "inference": ("/v1/jobs", {"type": "inference", "model": "ner:1", "dataset": dataset}),
        "compress": ("/v1/jobs", {"type": "compress", "model": "ner:1"}),
        # (No priority there: it runs at the default, within every cap.)
        "openai": ("/v1/fine_tuning/jobs", {"model": "all-MiniLM-L6-v2", "training_file": dataset}),
        "schedule": (
            "/v1/schedules",
            {
                "model_name": "ner",
                "dataset_name": "ner",
                "cron": "0 3 * * *",
                "evaluation_dataset": evaluation,
            },
        ),
    }


def test_every_job_type_is_refused_a_priority_above_its_teams_cap(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    routes = _submissions(client, alpha, platform)
    _team(platform, "alpha", max_priority="normal")
    del routes["openai"]
    for kind, (path, body) in routes.items():
        resp = client.post(path, headers=alpha, json={**body, "priority": "high"})
        assert resp.status_code == 422, (kind, resp.get_json())
        error = resp.get_json()["error"]
        assert error["field"] == "priority" and error["limit"] == "normal", (kind, error)
        allowed = client.post(path, headers=alpha, json={**body, "priority": "normal"})
        assert allowed.status_code == 201, (kind, allowed.get_json())


def test_a_draining_queue_refuses_every_job_type_alike(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    routes = _submissions(client, alpha, platform)
    _team(platform, "alpha", queue_state="draining")
    for kind, (path, body) in routes.items():
        resp = client.post(path, headers=alpha, json=body)
        assert resp.status_code == 409, (kind, resp.get_json())
        assert resp.get_json()["error"]["code"] == "draining", kind
    with platform.sessions() as session:
        assert session.scalar(select(Job.id)) is None, "a refused job was written"


def test_a_quota_no_job_could_ever_run_within_is_refused_for_every_job_type(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha = make_key("alpha")
    routes = _submissions(client, alpha, platform)
    _team(platform, "alpha", max_gpus=0, can_borrow=False)
    for kind, (path, body) in routes.items():
        resp = client.post(path, headers=alpha, json=body)
        assert resp.status_code == 422, (kind, resp.get_json())
        assert resp.get_json()["error"]["field"] == "resources.gpus", kind


def test_a_spent_budget_holds_every_job_type(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    _worker(platform, slots=4)
    alpha = make_key("alpha")
    routes = _submissions(client, alpha, platform)
    _team(platform, "alpha", gpu_hours_budget=0.0)
    for kind in ("finetune", "inference", "compress"):
        path, body = routes[kind]  # (the OpenAI route's answer has no reason_code)
        resp = client.post(path, headers=alpha, json=body)
        assert resp.status_code == 201, (kind, resp.get_json())
        job = resp.get_json()
        assert job["state"] == "pending" and job["reason_code"] == "quota", (kind, job)


def test_admission_holds_every_job_to_its_teams_priority_cap(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """A high inference job of a team capped at normal (a cap lowered after it was
    submitted) must not preempt another team's normal fine-tune."""
    from scheduler.ticks import run_admission

    _worker(platform, slots=1)
    alpha, beta = make_key("alpha"), make_key("beta")
    train = upload_ner(client, beta)["id"]
    _, victim = _finetune(client, beta, train)
    assert victim["state"] == "queued"
    with transaction(platform.sessions) as session:
        row = session.get(Job, victim["id"])
        assert row is not None
        row.state, row.started_at = "running", time.time()
    _model(platform, "alpha")
    with transaction(platform.sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == "alpha"))
        assert team_id is not None
        session.add(
            Job(
                id="job_urgent",
                team_id=team_id,
                type="inference",
                task="token-classification",
                spec={"model": "ner:1"},
                priority=2,
                slots=1,
                state="pending",
            )
        )
    _team(platform, "alpha", max_priority="normal")
    run_admission(platform)
    assert client.get(f"/v1/jobs/{victim['id']}", headers=beta).get_json()["state"] == "running"
    waiting = client.get("/v1/jobs/job_urgent", headers=alpha).get_json()
    assert waiting["state"] == "pending" and waiting["reason_code"] != "priority", waiting


@pytest.mark.parametrize(
    "change, words", [({"queue_state": "draining"}, "draining"), ({"max_priority": "low"}, "low")]
)
def test_a_retrains_evaluate_job_meets_the_same_refusals(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    tmp_path: Path,
    change: dict[str, str],
    words: str,
) -> None:
    from scheduler.model_updates import run_model_updates
    from storage.schedules import ScheduleRun
    from tests.api.test_schedules import _finish_retrain, _setup

    alpha = make_key("alpha")
    schedule = _setup(client, alpha, priority="normal")
    run = client.post(f"/v1/schedules/{schedule['id']}/run", headers=alpha).get_json()
    assert run["state"] == "training", run
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    _finish_retrain(platform, run["job_id"], tmp_path / "model")
    _team(platform, "alpha", **change)
    assert run["id"] in run_model_updates(platform)["advanced"]
    with platform.sessions() as session:
        row = session.get(ScheduleRun, run["id"])
        assert row is not None
        assert (row.state, row.outcome, row.evaluate_job_id) == ("decided", "failed", None)
        assert row.reason and "evaluate job refused" in row.reason and words in row.reason
        assert session.scalar(select(Job.id).where(Job.type == "evaluate")) is None


# -- the preemption event names its cause (issue 20 item 8) -----------------------------


@pytest.mark.parametrize(
    "victim_team, priority, why, code",
    [
        ({}, "high", "it has lower priority", "priority"),
        ({"max_gpus": 0, "can_borrow": True}, "normal", "beyond its quota", "quota"),
    ],
)
def test_the_preempted_jobs_events_name_the_job_it_yields_to_and_why(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    victim_team: dict[str, Any],
    priority: str,
    why: str,
    code: str,
) -> None:
    from storage.lease import claim
    from storage.models import JobEvent
    from worker.envelope import record_stop

    _worker(platform, slots=1)
    alpha, beta = make_key("alpha"), make_key("beta")
    _team(platform, "beta", **victim_team)
    _, victim = _finetune(client, beta, upload_ner(client, beta)["id"])
    assert victim["state"] == "queued", victim
    with transaction(platform.sessions) as session:
        claimed = claim(session, victim["id"], "w1", "runner-1", 60)
    assert claimed is not None
    _, cause = _finetune(client, alpha, upload_ner(client, alpha)["id"], priority=priority)
    expected = f"preempted for {cause['id']} (priority {priority}, team alpha): "
    shown = client.get(f"/v1/jobs/{victim['id']}", headers=beta).get_json()
    assert shown["state"] == "preempting" and shown["reason"].startswith(expected)
    assert why in shown["reason"] and shown["reason_code"] == code
    # The runner checkpoints and yields: its event and the wait repeat the cause.
    with transaction(platform.sessions) as session:
        assert record_stop(session, claimed, "preempt") == "preempted"
    with platform.sessions() as session:
        reasons = {
            e.new_state: e.reason
            for e in session.scalars(
                select(JobEvent).where(JobEvent.job_id == victim["id"]).order_by(JobEvent.id)
            )
        }
    for state in ("preempting", "pending"):
        assert (reasons[state] or "").startswith(expected) and why in (reasons[state] or "")


# -- silent workers and expired leases (issue 20 item 6; the real-process test is in
# -- tests/e2e/test_frozen_worker.py) ----------------------------------------------------


def test_a_worker_with_a_stale_heartbeat_gets_no_placements_until_it_beats_again(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    from scheduler.ticks import run_admission
    from storage.models import Worker
    from storage.workers import heartbeat

    _worker(platform, "w1", slots=1)
    with transaction(platform.sessions) as session:
        row = session.get(Worker, "w1")
        assert row is not None and row.state == "alive"
        row.heartbeat_at = time.time() - platform.settings.worker_stale_after_s - 1
    alpha = make_key("alpha")
    _, job = _finetune(client, alpha, upload_ner(client, alpha)["id"])
    assert job["state"] == "pending" and "heartbeat" in job["reason"], job
    with transaction(platform.sessions) as session:
        assert heartbeat(session, "w1")
    run_admission(platform)
    shown = client.get(f"/v1/jobs/{job['id']}", headers=alpha).get_json()
    assert shown["state"] == "queued" and shown["worker"] == "w1"


def test_a_job_whose_lease_expired_goes_to_another_worker_while_one_has_room(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    from scheduler.ticks import run_admission
    from storage.lease import claim, reap_expired

    _worker(platform, "wA", slots=1)
    _worker(platform, "wB", slots=1)
    alpha = make_key("alpha")
    train = upload_ner(client, alpha)["id"]

    def lose_lease(job_id: str, worker: str) -> None:
        with transaction(platform.sessions) as session:
            assert claim(session, job_id, worker, f"{worker}/1", 60) is not None
            row = session.get(Job, job_id)
            assert row is not None
            row.lease_until = time.time() - 1  # its runner froze past the lease
        with transaction(platform.sessions) as session:
            assert reap_expired(session) == [job_id]

    _, first = _finetune(client, alpha, train)
    assert first["worker"] == "wA"  # best fit; ties go by name
    lose_lease(first["id"], "wA")
    run_admission(platform)
    again = client.get(f"/v1/jobs/{first['id']}", headers=alpha).get_json()
    assert again["state"] == "queued" and again["worker"] == "wB", again
    # Where no other worker has room, the worker it came back from takes it after all.
    _, other = _finetune(client, alpha, train)
    assert other["worker"] == "wA"
    lose_lease(first["id"], "wB")
    run_admission(platform)
    back = client.get(f"/v1/jobs/{first['id']}", headers=alpha).get_json()
    assert back["state"] == "queued" and back["worker"] == "wB", back


def test_a_job_queued_on_a_worker_that_went_silent_is_placed_again_at_once(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    from scheduler.ticks import run_reaper
    from storage.models import Worker

    _worker(platform, "wA", slots=1)
    _worker(platform, "wB", slots=1)
    alpha = make_key("alpha")
    _, job = _finetune(client, alpha, upload_ner(client, alpha)["id"])
    assert job["state"] == "queued" and job["worker"] == "wA"
    # wA freezes before it claims: no heartbeat, far less than claim_timeout_s ago.
    with transaction(platform.sessions) as session:
        row = session.get(Worker, "wA")
        assert row is not None
        row.heartbeat_at = time.time() - platform.settings.worker_stale_after_s - 1
    assert platform.settings.claim_timeout_s > platform.settings.worker_stale_after_s + 1
    assert run_reaper(platform)["unclaimed"] == [job["id"]]
    shown = client.get(f"/v1/jobs/{job['id']}", headers=alpha).get_json()
    assert shown["state"] == "queued" and shown["worker"] == "wB", shown
