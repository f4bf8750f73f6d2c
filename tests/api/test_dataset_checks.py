"""An upload is checked for its format at once and stored ``validating``; a worker adds the
word-piece statistics (it has the tokenizer, the API has none) and makes it ``ready``, or
``failed`` naming the problem and its line. Jobs may start from a validating dataset,
never from a failed one."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import redis
from flask.testing import FlaskClient

from storage.blobs import store_file
from storage.db import transaction
from storage.ids import new_id
from storage.layout import dataset_key
from storage.models import Dataset
from storage.platform import Platform
from tests.api.conftest import KeyFactory, upload_ner
from tests.data.corpus_cases import CASES, CORPUS
from tunepool.messages import CHECK_DATASET_TASK, DATASET_QUEUE
from tunepool.synthetic import conll_text
from worker.dataset_checks import check_dataset


def check_requests(platform: Platform) -> list[Any]:
    """The arguments of the check tasks waiting on the datasets queue (kombu's messages)."""
    client = redis.Redis.from_url(platform.settings.redis_url)
    found = []
    for raw in client.lrange(DATASET_QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == CHECK_DATASET_TASK:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append(args)
    return found


def test_an_upload_is_validating_until_a_worker_adds_the_word_pieces(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    created = upload_ner(client, headers, conll_text(12, seed=4))
    assert created["status"] == 201, created
    dataset_id = created["id"]
    shown = client.get(f"/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert shown["status"] == "validating" and shown["status_details"] is None
    # The format was read at upload: counts and labels are there, word pieces are not.
    assert shown["stats"]["sentences"] == 12 and "sentence_length_pieces" not in shown["stats"]
    # The check went to the datasets queue, after the row was committed.
    assert [dataset_id] in check_requests(platform)
    # A job may start from it meanwhile: the format is already known good.
    job = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": dataset_id},
    )
    assert job.status_code == 201, job.get_json()

    assert check_dataset(platform, dataset_id) == "ready"
    ready = client.get(f"/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert ready["status"] == "ready"
    assert ready["stats"]["sentences"] == 12
    assert ready["stats"]["sentence_length_pieces"]["max"] >= ready["stats"]["tokens"] // 12
    assert ready["stats"]["truncation"]["max_length"] == 128
    # A second delivery of the same check changes nothing.
    assert check_dataset(platform, dataset_id) == "skipped"
    listed = client.get("/v1/datasets", headers=headers).get_json()["data"]
    assert [(d["id"], d["status"]) for d in listed] == [(dataset_id, "ready")]


def stored_directly(platform: Platform, team_name: str, source: Path, task: str, fmt: str) -> str:
    """A dataset whose file never passed the upload's check (as an older release stored)."""
    from sqlalchemy import select

    from storage.models import Team

    dataset_id = new_id("ds")
    with transaction(platform.sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == team_name))
        assert team_id is not None
        key = dataset_key(team_id, dataset_id, fmt)
        stored = store_file(session, platform.store, key, source)
        session.add(
            Dataset(
                id=dataset_id,
                team_id=team_id,
                name="old",
                task=task,
                format=fmt,
                object_key=key,
                size=stored.size,
                sha256=stored.sha256,
                stats={},
            )
        )
    return dataset_id


def test_a_failed_check_names_the_line_and_jobs_refuse_the_dataset(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    name, task, fmt, line, words = next(
        c for c in CASES if c[3] is not None and c[1] == "token-classification"
    )
    dataset_id = stored_directly(platform, "alpha", CORPUS / name, task, fmt)
    assert check_dataset(platform, dataset_id) == "failed"
    shown = client.get(f"/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert shown["status"] == "failed"
    assert shown["status_details"]["line"] == line and words in shown["status_details"]["message"]
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": dataset_id},
    )
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["field"] == "train_dataset" and error["line"] == line
    assert "failed its check" in error["message"] and words in error["message"]
    # The OpenAI-compatible files route says the same in OpenAI's words.
    file = client.get(f"/v1/files/{dataset_id}", headers=headers).get_json()
    assert file["status"] == "error" and file["status_details"].startswith(f"line {line}: ")


def test_a_file_changed_in_the_store_fails_its_check(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, tmp_path: Path
) -> None:
    headers = make_key()
    created = upload_ner(client, headers)
    with platform.sessions() as session:
        key = session.get(Dataset, created["id"]).object_key  # type: ignore[union-attr]
    corrupted = tmp_path / "other.conll"
    corrupted.write_text(conll_text(3, seed=9), encoding="utf-8")
    with open(corrupted, "rb") as data:
        platform.store.put(key, data, corrupted.stat().st_size)  # behind SQL's back
    assert check_dataset(platform, created["id"]) == "failed"
    shown = client.get(f"/v1/datasets/{created['id']}", headers=headers).get_json()
    assert "checksum mismatch" in shown["status_details"]["message"]
    assert client.get(f"/v1/files/{created['id']}", headers=headers).get_json()["status"] == "error"
