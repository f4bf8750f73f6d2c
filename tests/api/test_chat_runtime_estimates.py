"""A chat fine-tune's run time is estimated when it is made: tokens x epochs at the
engine's measured speed, so waiting jobs behind it get sensible starts."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient

from storage.db import transaction
from storage.platform import Platform
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory
from tests.api.test_chat_datasets import chat, upload_chat
from tunepool.chat_estimates import CPU_TOKENS_PER_S, GPU_TOKENS_PER_S
from tunepool.messages import worker_queue


def _submit(client: FlaskClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = client.post("/v1/jobs", headers=headers, json={"task": "causal-lm", **body})
    assert resp.status_code in (200, 201), resp.get_json()
    return dict(resp.get_json())


def _starts_in(job: dict[str, Any]) -> float:
    assert job["estimated_start"] is not None, job
    return datetime.fromisoformat(job["estimated_start"]).timestamp() - time.time()


def test_a_chat_job_is_planned_with_its_token_count(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host", worker_queue("w1"), 1))
    alpha = make_key("alpha")
    rows = [chat(f"Is message {i} spam? " + "words " * 40, "ham") for i in range(20)]
    uploaded = upload_chat(client, alpha, rows)
    tokens = uploaded["stats"]["tokens"]["total"]
    common = {"train_dataset": uploaded["id"], "base_model": "SmolLM2-135M-Instruct"}

    dry = _submit(client, alpha, **common, hyperparameters={"epochs": 3}, validate_only=True)
    trained = round(tokens * 0.95)  # the engine holds 5 % out without a validation file
    assert dry["estimate"]["billed_tokens"] == trained * 3
    assert dry["estimate"]["device"] == "cpu"

    first = _submit(client, alpha, **common, hyperparameters={"epochs": 3})
    expected = round(trained * 3 / CPU_TOKENS_PER_S, 1)
    assert first["state"] == "queued"
    assert first["spec"]["estimated_runtime_s"] == expected
    assert first["spec"]["runtime_estimate"]["tokens"] == "approximated"
    second = _submit(client, alpha, **common, estimated_runtime_s=60)
    assert second["spec"]["estimated_runtime_s"] == 60  # the submitter's own wins
    second = client.get(f"/v1/jobs/{second['id']}", headers=alpha).get_json()
    # The second waits for the first's estimated end, not the 600 s guess.
    assert abs(_starts_in(second) - expected) < 60


def test_a_pool_with_gpus_is_planned_at_gpu_speed(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    gpu = [{"index": 0, "name": "NVIDIA H100", "memory_total_mb": 81559}]
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("g1", "host", worker_queue("g1"), 1, gpus=gpu))
    alpha = make_key("alpha")
    uploaded = upload_chat(client, alpha, [chat("Is it spam?", "ham")] * 12)
    job = _submit(client, alpha, train_dataset=uploaded["id"], base_model="SmolLM2-135M-Instruct")
    estimate = job["spec"]["runtime_estimate"]
    assert estimate["device"] == "gpu" and estimate["tokens_per_s"] == GPU_TOKENS_PER_S
    assert estimate["epochs"] == 1  # the engine's default when the job names none
