"""Every numeric query parameter is typed and bounded: junk, unicode digits and numbers too
large for the database answer 422 naming the parameter, never 500 (issue 20, items 11/18)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.api.conftest import KeyFactory, upload_ner

HUGE = "1" * 25


def test_numeric_query_parameters_answer_422_naming_the_parameter(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key(role="admin")
    ds = upload_ner(client, headers)
    job = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": ds["id"]},
    ).get_json()["id"]
    cases = [
        ("/v1/fine_tuning/jobs?limit=abc", "limit"),
        ("/v1/fine_tuning/jobs?limit=0", "limit"),
        (f"/v1/fine_tuning/jobs?limit={HUGE}", "limit"),
        (f"/v1/fine_tuning/jobs/{job}/events?limit=abc", "limit"),
        (f"/v1/fine_tuning/jobs/{job}/events?after=ftevent-{HUGE}", "after"),
        (f"/v1/fine_tuning/jobs/{job}/events?after=ftevent-x", "after"),
        (f"/v1/jobs/{job}/events?after={HUGE}", "after"),
        (f"/v1/jobs/{job}/events?after=-1", "after"),
        (f"/v1/jobs/{job}/logs?after={HUGE}", "after"),
        (f"/v1/jobs/{job}/events?limit=1e3", "limit"),
        ("/v1/jobs?limit=²", "limit"),
        ("/v1/datasets?limit=1.5", "limit"),
        (f"/v1/alerts?cursor={HUGE}", "cursor"),
    ]
    for path, field in cases:
        resp = client.get(path, headers=headers)
        assert resp.status_code == 422, (path, resp.status_code, resp.get_data()[:300])
        assert resp.get_json()["error"]["field"] == field, path
    resp = client.get(f"/v1/jobs/{job}/logs", headers={**headers, "Last-Event-ID": HUGE})
    assert resp.status_code == 422
    assert resp.get_json()["error"]["field"] == "Last-Event-ID"
    # In range, they work.
    assert client.get("/v1/fine_tuning/jobs?limit=100", headers=headers).status_code == 200
    assert client.get(f"/v1/jobs/{job}/events?after=2147483647", headers=headers).status_code == 200


def test_a_model_version_too_large_for_the_database_is_refused(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    for ref in (f"x:{HUGE}", "x:²", "x:0"):
        for path in (f"/v1/models/{ref}/download", f"/v1/models/{ref}/predict"):
            method = client.post if path.endswith("predict") else client.get
            resp = method(path, headers=headers, json={"inputs": ["a"]})
            assert resp.status_code in (404, 422), (path, resp.status_code)
