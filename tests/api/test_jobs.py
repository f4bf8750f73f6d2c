"""/v1/jobs: submission checks, paging, events, cancel."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from storage.db import transaction
from storage.platform import Platform
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner
from tests.serving_process import ServingProcess


def submit(client: FlaskClient, headers: dict[str, str], **spec: object) -> tuple[int, dict]:
    resp = client.post("/v1/jobs", headers=headers, json={"task": "token-classification", **spec})
    return resp.status_code, resp.get_json()


def test_pending_job_says_why_it_waits(client: FlaskClient, make_key: KeyFactory) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    status, job = submit(client, headers, train_dataset=ds["id"])
    assert status == 201
    assert job["state"] == "pending"
    assert job["reason_code"] == "no_free_gpu" and "no worker" in job["reason"]
    assert job["queue_position"] == 1


def test_submit_is_admitted_to_a_registered_worker(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host", "tunepool.worker.w1", 2))
    headers = make_key()
    ds = upload_ner(client, headers)
    _, first = submit(client, headers, train_dataset=ds["id"], resources={"gpus": 2})
    _, second = submit(client, headers, train_dataset=ds["id"])
    assert first["state"] == "queued" and first["worker"] == "w1"
    assert second["state"] == "pending" and second["estimated_start"] is not None
    status, never = submit(client, headers, train_dataset=ds["id"], resources={"gpus": 3})
    assert status == 422 and never["error"]["field"] == "resources.gpus"
    assert "largest worker" in never["error"]["message"]


def test_invalid_specs_name_the_field(client: FlaskClient, make_key: KeyFactory) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    cases = [
        (
            {"train_dataset": ds["id"], "hyperparameters": {"learning_rat": 1}},
            "hyperparameters.learning_rat",
        ),
        ({"train_dataset": ds["id"], "priority": "urgent"}, "priority"),
        ({"train_dataset": ds["id"], "resources": {"gpus": 0}}, "resources.gpus"),
        ({"train_dataset": "ds_missing"}, "train_dataset"),
        ({"train_dataset": ds["id"], "base_model": "../../x; rm -rf /"}, "base_model"),
        ({"train_dataset": ds["id"], "surprise": 1}, "surprise"),
        ({}, "train_dataset"),
    ]
    for spec, field in cases:
        status, body = submit(client, headers, **spec)
        assert status == 422, (spec, body)
        assert body["error"]["field"] == field, (spec, body)
    resp = client.post("/v1/jobs", headers=headers, data="not json")
    assert resp.status_code == 400


def test_validate_only_creates_nothing(
    client: FlaskClient, make_key: KeyFactory, serving: ServingProcess
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    status, body = submit(client, headers, train_dataset=ds["id"], validate_only=True)
    assert status == 200 and body["valid"] is True
    assert client.get("/v1/jobs", headers=headers).get_json()["data"] == []


def test_listing_pages_with_a_cursor_and_filters_by_state(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    ids = []
    for _ in range(5):
        ids.append(submit(client, headers, train_dataset=ds["id"])[1]["id"])
        time.sleep(0.002)
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    first = client.get("/v1/jobs?limit=2", headers=headers).get_json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2]
    second = client.get(
        f"/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=headers
    ).get_json()
    third = client.get(
        f"/v1/jobs?limit=2&cursor={second['next_cursor']}", headers=headers
    ).get_json()
    assert [j["id"] for j in second["data"] + third["data"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    cancelled = client.get("/v1/jobs?state=cancelled", headers=headers).get_json()["data"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    assert client.get("/v1/jobs?state=bogus", headers=headers).status_code == 422


def test_events_and_cancel(client: FlaskClient, make_key: KeyFactory) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    _, job = submit(client, headers, train_dataset=ds["id"])
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).get_json()
    assert cancelled["state"] == "cancelled"
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409
    events = client.get(f"/v1/jobs/{job['id']}/events", headers=headers).get_json()["data"]
    assert [(e["old_state"], e["new_state"]) for e in events] == [
        (None, "pending"),
        ("pending", "cancelled"),
    ]
    viewer = make_key(role="viewer")
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=viewer).status_code == 403
