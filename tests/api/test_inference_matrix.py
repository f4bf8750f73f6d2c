"""Batch inference and compress for every task the platform trains, from every dataset
format the upload accepts (issue 20, item 10): submitted through /v1/jobs, run by the job
runners (no Celery), output read back through the API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.datasets import FORMATS
from storage.db import transaction
from storage.platform import Platform
from storage.states import JobState, transition
from tests.api.conftest import KeyFactory
from tests.api.models_helpers import publish_version
from tests.inference.tiny import CLASS_LABELS, NER_LABELS, tiny_model_dir
from tests.serving_process import ServingProcess
from worker.envelope import run_job

TOKEN, SEQUENCE = "token-classification", "sequence-classification"
# Words a model's pre-tokenizer would split further: the answer must keep them whole
# (a JSONL token may even hold a space; CoNLL cannot, see conll_words).
TOKEN_SENTENCES = [
    (["Ola", "Nordmann", "e-mail", "Zürich,"], ["B-PER", "I-PER", "O", "B-LOC"]),
    (["don't", "New York", "Kristiansand"], ["O", "B-LOC", "B-LOC"]),
    (["ok"], ["O"]),
]
TEXTS = [('great, really "good"', "positive"), ("awful", "negative"), ("meh", "neutral")]


def conll_words(words: list[str]) -> list[str]:
    return [word.replace(" ", "_") for word in words]


SAMPLES: dict[tuple[str, str], str] = {
    (TOKEN, "conll"): "\n\n".join(
        "\n".join(f"{w} {t}" for w, t in zip(conll_words(words), tags, strict=True))
        for words, tags in TOKEN_SENTENCES
    )
    + "\n",
    (TOKEN, "jsonl"): "".join(
        json.dumps({"tokens": words, "tags": tags}) + "\n" for words, tags in TOKEN_SENTENCES
    ),
    (SEQUENCE, "csv"): "text,label\n"
    + "".join(f'"{t.replace(chr(34), chr(34) * 2)}",{label}\n' for t, label in TEXTS),
    (SEQUENCE, "tsv"): "label\ttext\n" + "".join(f"{label}\t{t}\n" for t, label in TEXTS),
    (SEQUENCE, "jsonl"): "".join(
        json.dumps({"text": t, "label": label}) + "\n" for t, label in TEXTS
    ),
    ("masked-lm", "text"): "".join(f"{t}\n" for t, _ in TEXTS),
    ("masked-lm", "jsonl"): "".join(json.dumps({"text": t}) + "\n" for t, _ in TEXTS),
}
DATASETS = sorted(SAMPLES)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # The matrix is about the engines: SQLite only (test_model_jobs covers PostgreSQL).
    return f"sqlite:///{tmp_path / 'tunepool.sqlite3'}"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        TOKEN: tiny_model_dir(tmp_path_factory.mktemp("ner"), NER_LABELS, bias_to="B-LOC"),
        SEQUENCE: tiny_model_dir(
            tmp_path_factory.mktemp("cls"), CLASS_LABELS, task="sequence", bias_to="positive"
        ),
    }


def upload(client: FlaskClient, headers: dict[str, str], task: str, fmt: str) -> dict[str, Any]:
    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "task": task,
            "format": fmt,
            "name": f"{task}-{fmt}",
            "file": (io.BytesIO(SAMPLES[task, fmt].encode()), f"data.{fmt}"),
        },
    )
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def place(platform: Platform, job_id: str) -> None:
    with transaction(platform.sessions) as session:
        assert transition(
            session,
            job_id,
            JobState.QUEUED,
            reason="test placement",
            expect={JobState.PENDING},
            values={"worker_name": "w1", "queued_at": time.time()},
        )


def submit(client: FlaskClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    resp = client.post("/v1/jobs", headers=headers, json=body)
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


CHAT = {("causal-lm", fmt) for fmt in FORMATS["causal-lm"]}


def test_the_matrix_covers_every_upload_format() -> None:
    assert set(SAMPLES) | CHAT == {(task, fmt) for task, fmts in FORMATS.items() for fmt in fmts}


def test_batch_inference_refuses_a_chat_dataset_naming_it(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, models: dict[str, Path]
) -> None:
    alpha = make_key("alpha")
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    resp = client.post(
        "/v1/datasets",
        headers=alpha,
        content_type="multipart/form-data",
        data={
            "task": "causal-lm",
            "format": "chat",
            "file": (io.BytesIO((json.dumps(chat) + "\n").encode()), "c.jsonl"),
        },
    )
    assert resp.status_code == 201, resp.get_json()
    publish_version(platform, "alpha", SEQUENCE, models[SEQUENCE], task=SEQUENCE)
    answer = client.post(
        "/v1/jobs",
        headers=alpha,
        json={"type": "inference", "model": SEQUENCE, "dataset": resp.get_json()["id"]},
    )
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["field"] == "dataset" and "chat dataset" in error["message"]


@pytest.mark.parametrize(("dataset_task", "fmt"), DATASETS)
def test_every_model_task_batch_infers_every_dataset_format(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    models: dict[str, Path],
    dataset_task: str,
    fmt: str,
) -> None:
    alpha = make_key("alpha")
    dataset = upload(client, alpha, dataset_task, fmt)
    for task, model_dir in models.items():
        publish_version(platform, "alpha", task, model_dir, task=task)
        job_id = submit(
            client, alpha, {"type": "inference", "model": task, "dataset": dataset["id"]}
        )
        place(platform, job_id)
        assert run_job(platform, job_id, "w1") == "succeeded"
        job = client.get(f"/v1/jobs/{job_id}", headers=alpha).get_json()
        # Progress like training's: how far, how fast, how long still.
        assert job["progress"]["done"] == job["progress"]["total"] == job["metrics"]["inputs"]
        assert {"inputs_per_s", "eta_s", "attempt"} <= set(job["progress"])
        out = client.get(f"/v1/jobs/{job_id}/output", headers=alpha)
        assert out.status_code == 200
        records = [json.loads(line) for line in out.data.decode().splitlines()]
        expected = (
            [conll_words(words) if fmt == "conll" else words for words, _ in TOKEN_SENTENCES]
            if dataset_task == TOKEN
            else [text for text, _ in TEXTS]
        )
        assert [r["index"] for r in records] == list(range(len(expected)))
        for record, given in zip(records, expected, strict=True):
            if isinstance(given, list):
                assert record["words"] == given
            else:
                assert record["text"] == given
            if task == SEQUENCE:
                assert record["label"] == "positive"
                assert set(record["probabilities"]) == set(CLASS_LABELS)
            elif isinstance(given, list):
                # One label per given word, never a re-split of the caller's words.
                assert record["labels"] == ["B-LOC"] * len(given)
                assert [e["text"] for e in record["entities"]] == given
            else:
                for entity in record["entities"]:
                    assert given[entity["start"] : entity["end"]] == entity["text"]
        logs = client.get(f"/v1/jobs/{job_id}/logs", headers=alpha).get_json()
        lines = [line["message"] for batch in logs["data"] for line in batch["lines"]]
        assert any("claimed by w1" in line for line in lines), lines
        assert any(line.startswith(f"predicted {len(expected)}/") for line in lines), lines


@pytest.mark.parametrize(
    ("task", "fmt"),
    [(task, fmt) for task in (TOKEN, SEQUENCE) for fmt in FORMATS[task]],
)
def test_every_model_task_compresses_scored_on_its_validation_format(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    models: dict[str, Path],
    serving: ServingProcess,
    task: str,
    fmt: str,
) -> None:
    alpha = make_key("alpha")
    validation = upload(client, alpha, task, fmt)
    publish_version(
        platform,
        "alpha",
        "m",
        models[task],
        task=task,
        lineage={"validation_dataset": validation["id"]},
    )
    job_id = submit(client, alpha, {"type": "compress", "model": "m:1"})
    place(platform, job_id)
    assert run_job(platform, job_id, "w1") == "succeeded"
    report = client.get(f"/v1/jobs/{job_id}", headers=alpha).get_json()["metrics"]
    metric = "f1" if task == TOKEN else "accuracy"
    assert report["metric"] == metric and report["eval_sentences"] == len(
        TOKEN_SENTENCES if task == TOKEN else TEXTS
    )
    assert {f"{metric}_fp32", f"{metric}_int8", f"{metric}_delta", "speedup"} <= set(report)
    # The int8 version serves like the one it came from.
    probe: list[Any] = [["Ola", "e-mail"]] if task == TOKEN else ["great"]
    pred = client.post("/v1/models/m:2/predict", headers=alpha, json={"inputs": probe})
    assert pred.status_code == 200, pred.get_json()
    (answer,) = pred.get_json()["predictions"]
    assert answer.get("labels") == ["B-LOC", "B-LOC"] or answer.get("label") == "positive"


def test_masked_lm_models_are_refused_at_submit_naming_the_model(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, models: dict[str, Path]
) -> None:
    alpha = make_key("alpha")
    dataset = upload(client, alpha, "masked-lm", "text")
    publish_version(platform, "alpha", "mlm", models[TOKEN], task="masked-lm")
    for body in (
        {"type": "inference", "model": "mlm", "dataset": dataset["id"]},
        {"type": "compress", "model": "mlm:1"},
    ):
        resp = client.post("/v1/jobs", headers=alpha, json=body)
        assert resp.status_code == 422, resp.get_json()
        error = resp.get_json()["error"]
        assert error["field"] == "model" and "masked-lm" in error["message"], error
