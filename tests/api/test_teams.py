"""Teams, quotas, keys, the pool view and priority edits through the API."""

from __future__ import annotations

from flask.testing import FlaskClient

from storage.db import transaction
from storage.platform import Platform
from storage.teams import create_team
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner


def operator(platform: Platform) -> dict[str, str]:
    with transaction(platform.sessions) as session:
        _, key = create_team(session, "ops", role="admin", operator=True)
    return {"Authorization": f"Bearer {key}"}


def test_operator_creates_a_team_with_quotas_and_its_key_works(
    client: FlaskClient, platform: Platform
) -> None:
    ops = operator(platform)
    resp = client.post(
        "/v1/teams",
        headers=ops,
        json={
            "name": "vision",
            "weight": 2,
            "max_gpus": 4,
            "gpu_hours_budget": 100,
            "can_borrow": False,
        },
    )
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    me = client.get("/v1/teams/me", headers=headers).get_json()
    assert me["name"] == "vision" and me["weight"] == 2
    assert me["quota"] == {
        "max_gpus": 4,
        "gpu_hours_budget": 100,
        "can_borrow": False,
        "max_priority": "high",
    }
    assert me["usage"]["gpu_hours"] == 0 and me["usage"]["gpu_hours_left"] == 100
    assert me["jobs"] == {"running": 0, "queued": 0, "pending": 0}
    bad = client.post("/v1/teams", headers=ops, json={"name": "Bad Name!"})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "name"


def test_team_admins_manage_their_queue_and_keys_but_not_quotas(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    admin = make_key("alpha", role="admin")
    me = client.get("/v1/teams/me", headers=admin).get_json()
    assert client.post("/v1/teams", headers=admin, json={"name": "x"}).status_code == 403
    assert (
        client.patch(f"/v1/teams/{me['id']}", headers=admin, json={"max_gpus": 100}).status_code
        == 403
    )
    held = client.patch(f"/v1/teams/{me['id']}", headers=admin, json={"queue_state": "draining"})
    assert held.status_code == 200 and held.get_json()["queue_state"] == "draining"
    ds = upload_ner(client, admin)
    refused = client.post(
        "/v1/jobs", headers=admin, json={"task": "token-classification", "train_dataset": ds["id"]}
    )
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "draining"

    new = client.post(f"/v1/teams/{me['id']}/keys", headers=admin, json={"role": "viewer"})
    assert new.status_code == 201
    viewer = {"Authorization": f"Bearer {new.get_json()['key']}"}
    assert client.get("/v1/teams/me", headers=viewer).status_code == 200
    keys = client.get(f"/v1/teams/{me['id']}/keys", headers=admin).get_json()["data"]
    assert all("key" not in k and "key_hash" not in k for k in keys)
    viewer_id = next(k["id"] for k in keys if k["role"] == "viewer")
    assert client.post(f"/v1/keys/{viewer_id}/revoke", headers=admin).status_code == 200
    assert client.get("/v1/teams/me", headers=viewer).status_code == 401
    # Another team's admin cannot see this team or revoke its keys.
    other = make_key("beta", role="admin")
    assert client.get(f"/v1/teams/{me['id']}/keys", headers=other).status_code == 404


def test_submit_refuses_what_the_quota_or_priority_limit_never_allows(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    ops = operator(platform)
    headers = make_key("alpha")
    me = client.get("/v1/teams/me", headers=headers).get_json()
    client.patch(
        f"/v1/teams/{me['id']}",
        headers=ops,
        json={"max_gpus": 1, "can_borrow": False, "max_priority": "normal"},
    )
    ds = upload_ner(client, headers)
    job = {"task": "token-classification", "train_dataset": ds["id"]}
    too_big = client.post("/v1/jobs", headers=headers, json={**job, "resources": {"gpus": 2}})
    assert too_big.status_code == 422
    assert "quota of 1" in too_big.get_json()["error"]["message"]
    too_high = client.post("/v1/jobs", headers=headers, json={**job, "priority": "high"})
    assert too_high.status_code == 422 and too_high.get_json()["error"]["field"] == "priority"
    ok = client.post("/v1/jobs", headers=headers, json={**job, "priority": "low"})
    assert ok.status_code == 201
    job_id = ok.get_json()["id"]
    raised = client.patch(f"/v1/jobs/{job_id}", headers=headers, json={"priority": "normal"})
    assert raised.status_code == 200 and raised.get_json()["priority"] == "normal"
    assert (
        client.patch(f"/v1/jobs/{job_id}", headers=headers, json={"priority": "high"}).status_code
        == 422
    )
    client.post(f"/v1/jobs/{job_id}/cancel", headers=headers)
    assert (
        client.patch(f"/v1/jobs/{job_id}", headers=headers, json={"priority": "low"}).status_code
        == 409
    )


def test_pool_shows_workers_and_hides_other_teams_job_ids(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host", "tunepool.worker.w1", 2))
    alpha, beta = make_key("alpha"), make_key("beta")
    ds = upload_ner(client, alpha)
    job = client.post(
        "/v1/jobs", headers=alpha, json={"task": "token-classification", "train_dataset": ds["id"]}
    ).get_json()
    assert job["state"] == "queued"
    mine = client.get("/v1/pool", headers=alpha).get_json()
    theirs = client.get("/v1/pool", headers=beta).get_json()
    assert mine["capacity"] == {"slots": 2, "free_slots": 1}
    assert mine["workers"][0]["jobs"][0]["job"] == job["id"]
    assert theirs["workers"][0]["jobs"][0] == {**mine["workers"][0]["jobs"][0], "job": None}
