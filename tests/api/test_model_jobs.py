"""Batch inference and compress jobs: submitted through /v1/jobs, run by their runners."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from storage.db import transaction
from storage.lease import reap_expired
from storage.platform import Platform
from storage.states import JobState, transition
from tests.api.conftest import KeyFactory, upload_ner
from tests.api.models_helpers import publish_version
from tests.inference.tiny import NER_LABELS, tiny_model_dir
from tests.serving_process import ServingProcess
from worker.envelope import run_job


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("ner"), NER_LABELS, bias_to="B-PER")


def place(platform: Platform, job_id: str, worker: str = "w1") -> None:
    """What an admission pass does once a worker has a free slot."""
    with transaction(platform.sessions) as session:
        assert transition(
            session,
            job_id,
            JobState.QUEUED,
            reason="test placement",
            expect={JobState.PENDING},
            values={"worker_name": worker, "queued_at": time.time()},
        )


def test_inference_job_writes_checksummed_jsonl_output(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, ner_dir: Path
) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    dataset = upload_ner(client, alpha)
    publish_version(platform, "alpha", "ner", ner_dir)
    client.put("/v1/models/ner/aliases/production", headers=alpha, json={"version": 1})

    bad = [
        {"type": "inference", "model": "ner@production"},
        {"type": "inference", "model": "ner@nope", "dataset": dataset["id"]},
        {"type": "inference", "model": "ner", "dataset": "ds_missing"},
        {"type": "inference", "model": "../x", "dataset": dataset["id"]},
    ]
    for body in bad:
        assert client.post("/v1/jobs", headers=alpha, json=body).status_code == 422, body
    body = {"type": "inference", "model": "ner@production", "dataset": dataset["id"]}
    # Another team can neither use alpha's model nor alpha's dataset.
    assert client.post("/v1/jobs", headers=beta, json=body).status_code == 422

    resp = client.post("/v1/jobs", headers=alpha, json=body)
    assert resp.status_code == 201, resp.get_json()
    job = resp.get_json()
    assert job["type"] == "inference" and job["state"] == "pending"
    assert job["spec"]["model_version"] == 1  # pinned at submission
    assert client.get(f"/v1/jobs/{job['id']}/output", headers=alpha).status_code == 409

    place(platform, job["id"])
    assert run_job(platform, job["id"], "w1") == "succeeded"
    assert run_job(platform, job["id"], "w1") == "not_claimed"  # duplicate delivery
    done = client.get(f"/v1/jobs/{job['id']}", headers=alpha).get_json()
    assert (
        done["state"] == "succeeded" and done["metrics"]["inputs"] == dataset["stats"]["sentences"]
    )
    assert done["metrics"]["output_key"].endswith(f"/jobs/{job['id']}/predictions.jsonl")

    out = client.get(f"/v1/jobs/{job['id']}/output", headers=alpha)
    assert out.status_code == 200
    assert hashlib.sha256(out.data).hexdigest() == done["metrics"]["output_sha256"]
    records = [json.loads(line) for line in out.data.decode().splitlines()]
    assert [r["index"] for r in records] == list(range(len(records)))
    for record in records:
        # A CoNLL dataset already has words: one label per word comes back, spans count words.
        assert record["labels"] == ["B-PER"] * len(record["words"])
        assert [e["text"] for e in record["entities"]] == record["words"]
        assert all(
            record["words"][e["start"] : e["end"]] == [e["text"]] for e in record["entities"]
        )
    assert client.get(f"/v1/jobs/{job['id']}/output", headers=beta).status_code == 404


def test_compress_job_adds_an_int8_version_with_its_report(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    ner_dir: Path,
    serving: ServingProcess,
) -> None:
    alpha = make_key("alpha")
    dataset = upload_ner(client, alpha)
    publish_version(
        platform, "alpha", "ner", ner_dir, lineage={"validation_dataset": dataset["id"]}
    )
    resp = client.post("/v1/jobs", headers=alpha, json={"type": "compress", "model": "ner:1"})
    assert resp.status_code == 201, resp.get_json()
    job = resp.get_json()
    place(platform, job["id"])
    assert run_job(platform, job["id"], "w1") == "succeeded"
    done = client.get(f"/v1/jobs/{job['id']}", headers=alpha).get_json()
    report = done["metrics"]
    assert report["model_version"] == 2 and report["eval_sentences"] > 0
    assert report["size_bytes_int8"] < report["size_bytes_fp32"]
    assert {"speedup", "f1_fp32", "f1_int8", "f1_delta"} <= set(report)

    v2 = client.get("/v1/models/ner/versions/2", headers=alpha).get_json()
    assert v2["lineage"]["compressed_from"]["version"] == 1
    assert v2["lineage"]["quantization"] == "dynamic-int8"
    assert done["model_version_id"] == v2["id"]
    # The int8 version loads and serves like any other.
    pred = client.post("/v1/models/ner:2/predict", headers=alpha, json={"inputs": ["Ola Nordmann"]})
    assert pred.status_code == 200, pred.get_json()
    assert [e["text"] for e in pred.get_json()["predictions"][0]["entities"]] == ["Ola", "Nordmann"]


def test_inference_holds_its_lease_through_a_long_first_chunk(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, ner_dir: Path
) -> None:
    """The lease is renewed in the background from claim to end: a first chunk (or a model
    load) that outlives the lease does not let the reaper take the job (issue 20, item 14)."""
    alpha = make_key("alpha")
    sentence = " ".join(f"word{i}" for i in range(48))
    lines = "".join(
        json.dumps({"tokens": sentence.split(), "tags": ["O"] * 48}) + "\n" for _ in range(1000)
    )
    dataset = upload_ner(client, alpha, lines, fmt="jsonl")
    publish_version(platform, "alpha", "ner", ner_dir)
    job_id = client.post(
        "/v1/jobs",
        headers=alpha,
        json={"type": "inference", "model": "ner", "dataset": dataset["id"]},
    ).get_json()["id"]
    place(platform, job_id)
    # Predicting 1000 such sentences takes seconds (chunks of 512 before the fix).
    short = Platform(
        platform.settings.model_copy(update={"lease_ttl_s": 0.6, "lease_renew_s": 0.05})
    )
    stop = threading.Event()

    def reaper() -> None:
        while not stop.wait(0.1):
            with transaction(platform.sessions) as session:
                reap_expired(session)

    thread = threading.Thread(target=reaper, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        outcome = run_job(short, job_id, "w1")
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(5)
        short.close()
    assert took > short.settings.lease_ttl_s  # the run did outlive its lease
    assert outcome == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}", headers=alpha).get_json()
    assert job["state"] == "succeeded" and job["attempt"] == 1
