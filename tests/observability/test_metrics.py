"""/metrics: after a known sequence of jobs every listed series holds the right value."""

from __future__ import annotations

import time

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from api.app import create_app
from scheduler.pool import mark_lost
from scheduler.ticks import run_admission
from storage.db import transaction
from storage.lease import claim
from storage.models import Job
from storage.platform import Platform
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.gpu_stats import sample_gpus
from tunepool.observations import ADMISSION_KEY, GPU_KEY_PREFIX, publish_gpu_samples
from worker.job_callbacks import JobCallbacks


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def submit(client: FlaskClient, headers: dict[str, str], dataset: str) -> dict:
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": dataset},
    )
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def test_metrics_after_a_known_sequence_of_jobs(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    started = time.time()
    store = redis.Redis.from_url(platform.settings.redis_url)
    store.delete(ADMISSION_KEY)
    for key in store.scan_iter(match=GPU_KEY_PREFIX + "*"):
        store.delete(key)
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host1", "tunepool.worker.w1", 1))
        register(session, WorkerInfo("w2", "host2", "tunepool.worker.w2", 2))
    with transaction(platform.sessions) as session:
        mark_lost(session, lost_after_s=60, now=time.time() + 120)
        register(session, WorkerInfo("w1", "host1", "tunepool.worker.w1", 1))  # w1 alive again

    alpha, beta = make_key("alpha"), make_key("beta")
    ds_a, ds_b = upload_ner(client, alpha)["id"], upload_ner(client, beta)["id"]
    first = submit(client, alpha, ds_a)  # takes w1's only slot
    second = submit(client, alpha, ds_a)  # waits
    third = submit(client, beta, ds_b)  # waits, then is cancelled
    assert (first["state"], second["state"], third["state"]) == ("queued", "pending", "pending")
    assert client.post(f"/v1/jobs/{third['id']}/cancel", headers=beta).status_code == 200

    # The first job was submitted 40 s before it starts: it lands in the 60 s bucket.
    with transaction(platform.sessions) as session:
        session.execute(
            update(Job).where(Job.id == first["id"]).values(created_at=time.time() - 40)
        )
    with transaction(platform.sessions) as session:
        claimed = claim(session, first["id"], "w1", "w1/1/x", ttl_s=60)
    assert claimed is not None
    with platform.sessions() as session:
        team_alpha = session.get(Job, first["id"]).team_id  # type: ignore[union-attr]
    JobCallbacks(platform, first["id"], team_alpha, claimed.owner, 1).on_progress(
        {"step": 12, "epoch": 0.5, "loss": 0.75, "tokens_per_s": 1234.5, "eta_s": 9.0}
    )
    publish_gpu_samples(
        platform.settings.redis_url,
        "w1",
        [
            {
                "index": 0,
                "name": "H200",
                "utilization": 0.42,
                "memory_used_bytes": 1024,
                "memory_total_bytes": 4096,
            }
        ],
        ttl_s=30,
    )
    before = scrape(client)
    passes = value(before, "tunepool_admission_pass_duration_seconds_count")
    assert passes >= 3  # one per submit at least
    run_admission(platform)
    run_admission(platform)
    m = scrape(client)

    # Jobs by team and state, zeros included.
    assert value(m, "tunepool_jobs", team="alpha", state="running") == 1
    assert value(m, "tunepool_jobs", team="alpha", state="pending") == 1
    assert value(m, "tunepool_jobs", team="alpha", state="queued") == 0
    assert value(m, "tunepool_jobs", team="beta", state="cancelled") == 1
    assert value(m, "tunepool_jobs", team="beta", state="pending") == 0

    # Submit -> start: one started job, in the 60 s bucket but not the 30 s one.
    hist = "tunepool_job_submit_to_start_seconds"
    assert value(m, hist + "_count", team="alpha") == 1
    assert value(m, hist + "_bucket", team="alpha", le="30.0") == 0
    assert value(m, hist + "_bucket", team="alpha", le="60.0") == 1
    assert value(m, hist + "_bucket", team="alpha", le="+Inf") == 1
    assert 39 <= value(m, hist + "_sum", team="alpha") <= 45
    assert not any(k[0].startswith(hist) and ("team", "beta") in k[1] for k in m)

    # Admission passes: exactly the two just run were added; buckets are cumulative.
    adm = "tunepool_admission_pass_duration_seconds"
    assert value(m, adm + "_count") == passes + 2
    assert value(m, adm + "_bucket", le="+Inf") == passes + 2
    assert value(m, adm + "_sum") > 0
    bounds = sorted((float(dict(k[1])["le"]), v) for k, v in m.items() if k[0] == adm + "_bucket")
    assert [v for _, v in bounds] == sorted(v for _, v in bounds)

    # Training progress per team, summed over its running jobs: no series names a job.
    assert value(m, "tunepool_team_training_tokens_per_second", team="alpha") == 1234.5
    assert value(m, "tunepool_team_training_jobs_reporting", team="alpha") == 1
    assert not any(
        k[0].startswith("tunepool_team_training") and ("team", "beta") in k[1] for k in m
    )

    # Worker liveness and slots.
    assert value(m, "tunepool_worker_up", worker="w1") == 1
    assert value(m, "tunepool_worker_up", worker="w2") == 0
    assert value(m, "tunepool_worker_slots", worker="w2") == 2
    assert value(m, "tunepool_worker_slots_used", worker="w1") == 1
    # The heartbeat registered during this test (not "recently": a loaded machine is slow).
    heartbeat = value(m, "tunepool_worker_last_heartbeat_timestamp_seconds", worker="w1")
    assert started <= heartbeat <= time.time()

    # GPU readings published by a worker's heartbeat.
    gpu = {"worker": "w1", "gpu": "0", "model": "H200"}
    assert value(m, "tunepool_gpu_utilization_ratio", **gpu) == 0.42
    assert value(m, "tunepool_gpu_memory_used_bytes", **gpu) == 1024
    assert value(m, "tunepool_gpu_memory_total_bytes", **gpu) == 4096


def test_metrics_name_no_job_and_no_label_outside_a_short_known_set(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """Job ids are unbounded label values and tell a scraper what every team runs."""
    alpha = make_key("alpha")
    dataset = upload_ner(client, alpha)["id"]
    jobs = [submit(client, alpha, dataset) for _ in range(2)]
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host1", "tunepool.worker.w1", 1))
    run_admission(platform)
    with transaction(platform.sessions) as session:
        claimed = claim(session, jobs[0]["id"], "w1", "w1/1/x", ttl_s=60)
    assert claimed is not None
    with platform.sessions() as session:
        team = session.get(Job, jobs[0]["id"]).team_id  # type: ignore[union-attr]
    JobCallbacks(platform, jobs[0]["id"], team, claimed.owner, 1).on_progress(
        {"step": 3, "epoch": 0.1, "loss": 0.5, "tokens_per_s": 99.0}
    )
    text = client.get("/metrics").get_data(as_text=True)
    for job in jobs:
        assert job["id"] not in text
        assert job["id"].split("_", 1)[1] not in text
    labels = {
        name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for name in sample.labels
    }
    # base_model: the chat bases a serving worker holds, from the operator's allow-list.
    assert labels <= {"team", "state", "le", "worker", "gpu", "model", "kind", "base_model"}


def test_metrics_require_the_operators_bearer_token_once_one_is_set(
    platform: Platform, make_key: KeyFactory
) -> None:
    guarded = Platform(platform.settings.model_copy(update={"metrics_token": "scrape-s3cret"}))
    try:
        client = create_app(platform=guarded).test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        # A team's API key is not the operators' token.
        assert client.get("/metrics", headers=make_key("alpha")).status_code == 401
        answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-s3cret"})
        assert answer.status_code == 200
        assert answer.content_type.startswith("text/plain")
        refused = client.get("/metrics")
        assert refused.get_json()["error"]["code"] == "unauthenticated"
        assert "tunepool_" not in refused.get_data(as_text=True)
    finally:
        guarded.close()


def test_metrics_needs_no_team_key_and_survives_an_empty_database(client: FlaskClient) -> None:
    m = scrape(client)
    assert not any(k[0] == "tunepool_jobs" for k in m)


def test_nvml_reads_this_hosts_gpus() -> None:
    samples = sample_gpus()
    if not samples:
        pytest.skip("no GPU (or no NVML) on this machine")
    for gpu in samples:
        assert 0.0 <= gpu["utilization"] <= 1.0
        assert 0 < gpu["memory_used_bytes"] <= gpu["memory_total_bytes"]
