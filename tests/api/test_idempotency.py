"""Idempotency-Key: a retried create returns the first answer and creates nothing new."""

from __future__ import annotations

import io
import threading

from flask.testing import FlaskClient
from sqlalchemy import func, select

from storage.models import Dataset, Job
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.platform import Platform
from tunepool.synthetic import conll_text


def count(platform: Platform, model: type) -> int:
    with platform.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_retried_job_submission_returns_the_first_job(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    once = {**headers, "Idempotency-Key": "submit-1"}
    first = client.post("/v1/jobs", headers=once, json=body)
    again = client.post("/v1/jobs", headers=once, json=body)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(platform, Job) == 1
    # Another key creates another job; the same key for another body is refused.
    other = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "submit-2"}, json=body)
    assert other.get_json()["id"] != first.get_json()["id"]
    changed = client.post("/v1/jobs", headers=once, json={**body, "priority": "low"})
    assert changed.status_code == 422
    assert changed.get_json()["error"]["code"] == "idempotency_key_reused"
    assert count(platform, Job) == 2


def test_a_retried_upload_stores_one_dataset_and_keys_are_per_team(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    text = conll_text(10, seed=4).encode()

    def upload(headers: dict[str, str]) -> dict:
        resp = client.post(
            "/v1/datasets",
            headers={**headers, "Idempotency-Key": "up-1"},
            content_type="multipart/form-data",
            data={
                "task": "token-classification",
                "format": "conll",
                "name": "ner",
                "file": (io.BytesIO(text), "ner.conll"),
            },
        )
        assert resp.status_code == 201, resp.get_json()
        return dict(resp.get_json())

    first, retry = upload(alpha), upload(alpha)
    assert retry["id"] == first["id"] and count(platform, Dataset) == 1
    # The same key string from another team is another request.
    assert upload(beta)["id"] != first["id"] and count(platform, Dataset) == 2


def test_a_refused_request_is_replayed_and_a_bad_key_is_422(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = {**make_key(), "Idempotency-Key": "bad-1"}
    body = {"task": "token-classification", "train_dataset": "ds_missing"}
    first = client.post("/v1/jobs", headers=headers, json=body)
    second = client.post("/v1/jobs", headers=headers, json=body)
    assert first.status_code == second.status_code == 422
    assert second.get_json() == first.get_json()
    bad = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "has space"}, json=body)
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "Idempotency-Key"


def test_concurrent_retries_create_one_job(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    app = client.application
    statuses: list[int] = []

    def submit() -> None:
        with app.test_client() as own:
            resp = own.post("/v1/jobs", headers={**headers, "Idempotency-Key": "race"}, json=body)
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(platform, Job) == 1
    # Each caller got the job (first answer or its replay) or was told to retry (409).
    assert set(statuses) <= {201, 409} and 201 in statuses
