"""Authentication and team isolation: 401 without a valid key, 404 for another team's things."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.api.conftest import KeyFactory, upload_ner


def test_missing_or_wrong_key_is_401(client: FlaskClient, make_key: KeyFactory) -> None:
    make_key()
    assert client.get("/v1/jobs").status_code == 401
    assert (
        client.get("/v1/jobs", headers={"Authorization": "Bearer tp_00000000_nope"}).status_code
        == 401
    )
    assert client.get("/v1/jobs", headers={"Authorization": "Basic abc"}).status_code == 401
    body = client.get("/v1/datasets").get_json()
    assert body["error"]["code"] == "unauthenticated"


def test_other_teams_jobs_and_datasets_are_404(client: FlaskClient, make_key: KeyFactory) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    ds = upload_ner(client, alpha)
    job = client.post(
        "/v1/jobs",
        headers=alpha,
        json={
            "task": "token-classification",
            "train_dataset": ds["id"],
            "base_model": "all-MiniLM-L6-v2",
        },
    ).get_json()
    assert job["state"] in ("pending", "queued")

    assert client.get(f"/v1/datasets/{ds['id']}", headers=beta).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}", headers=beta).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}/events", headers=beta).status_code == 404
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=beta).status_code == 404
    assert client.get("/v1/jobs", headers=beta).get_json()["data"] == []
    assert client.get("/v1/datasets", headers=beta).get_json()["data"] == []
    # Using another team's dataset in a job looks exactly like a missing one.
    resp = client.post(
        "/v1/jobs",
        headers=beta,
        json={
            "task": "token-classification",
            "train_dataset": ds["id"],
        },
    )
    assert resp.status_code == 422 and resp.get_json()["error"]["field"] == "train_dataset"
    # The owner still sees and controls its job.
    assert client.get(f"/v1/jobs/{job['id']}", headers=alpha).status_code == 200
    assert (
        client.post(f"/v1/jobs/{job['id']}/cancel", headers=alpha).get_json()["state"]
        == "cancelled"
    )
