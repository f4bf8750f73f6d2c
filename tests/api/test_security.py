"""Security: another team's ids answer like missing ones on every route, keys (missing,
malformed, revoked, rotated) and roles, hashed keys, the audit log, upload limits, hostile
names, per-key rate limits, and no secret in logs or responses."""

from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api.app import create_app
from storage.audit import AuditEvent
from storage.models import ApiKey, Job, Team
from storage.platform import Platform
from tests.api.conftest import KeyFactory, upload_ner
from tests.api.models_helpers import publish_version
from tunepool.settings import Settings

_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _owned_things(
    client: FlaskClient, platform: Platform, alpha: dict[str, str], tmp_path: Path
) -> dict[str, str]:
    """One of each of alpha's things, by the path parameter names routes use."""
    ds = upload_ner(client, alpha)
    job = client.post(
        "/v1/jobs", headers=alpha, json={"task": "token-classification", "train_dataset": ds["id"]}
    ).get_json()
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    publish_version(platform, "alpha", "alpha-ner", model_dir)
    client.put("/v1/models/alpha-ner/aliases/production", headers=alpha, json={"version": 1})
    with platform.sessions() as session:
        team = session.scalar(select(Team).where(Team.name == "alpha"))
        assert team is not None
        key_id = session.scalar(select(ApiKey.id).where(ApiKey.team_id == team.id))
    return {
        "job_id": job["id"],
        "dataset_id": ds["id"],
        "file_id": ds["id"],
        "name": "alpha-ner",
        "ref": "alpha-ner:1",
        "version": "1",
        "alias": "production",
        "ident": team.id,
        "key_id": str(key_id),
    }


def test_every_route_answers_another_teams_ids_exactly_like_missing_ones(
    app: Flask, client: FlaskClient, platform: Platform, make_key: KeyFactory, tmp_path: Path
) -> None:
    alpha = make_key("alpha", role="admin")
    beta = make_key("beta", role="admin")  # the highest role a non-operator team has
    things = _owned_things(client, platform, alpha, tmp_path)
    checked = 0
    for rule in app.url_map.iter_rules():
        params = [name for _, name in _CONVERTER.findall(rule.rule)]
        if not rule.rule.startswith("/v1/") or not params:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            theirs = {p: things.get(p, "x") for p in params}
            missing = {p: ("999999" if p == "version" else f"nope{p}") for p in params}
            got = _call(client, method, _fill(rule.rule, theirs), beta)
            unknown = _call(client, method, _fill(rule.rule, missing), beta)
            assert got[0] == unknown[0], (method, rule.rule, got, unknown)
            assert got[0] in (404, 405, 422), (method, rule.rule, got)
            if method == "GET":
                assert got[0] == 404, (method, rule.rule, got)
            checked += 1
    assert checked >= 25
    # Nothing of alpha's moved: its job is still waiting, its key still works.
    with platform.sessions() as session:
        job = session.get(Job, things["job_id"])
        assert job is not None and job.state in ("pending", "queued")
    assert client.get("/v1/teams/me", headers=alpha).status_code == 200


def _fill(rule: str, values: dict[str, str]) -> str:
    return _CONVERTER.sub(lambda m: values[m.group(2)], rule)


def _call(client: FlaskClient, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    resp = client.open(path, method=method, headers=headers, json={})
    body = resp.get_json(silent=True) or {}
    return resp.status_code, str((body.get("error") or {}).get("code"))


def test_missing_malformed_revoked_and_rotated_keys(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    admin = make_key("alpha", role="admin")
    for header in (
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwdw==",
        "Bearer tp_",
        "tp_a_b",
        "Bearer tp_zz_" + "A" * 43,
        "Bearer " + "x" * 5000,
        "Bearer tp_a_b\x00",
    ):
        resp = client.get("/v1/jobs", headers={"Authorization": header} if header else {})
        assert resp.status_code == 401, header
        assert resp.get_json()["error"]["code"] == "unauthenticated"
    # Rotation: a new key works at once; the old one, revoked, never again.
    old = make_key("alpha", role="member")
    new = client.post("/v1/teams/me/keys", headers=admin, json={"role": "member"})
    if new.status_code == 404:  # the team is addressed by id
        me = client.get("/v1/teams/me", headers=admin).get_json()["id"]
        new = client.post(f"/v1/teams/{me}/keys", headers=admin, json={"role": "member"})
    assert new.status_code == 201
    new_headers = {"Authorization": f"Bearer {new.get_json()['key']}"}
    me = client.get("/v1/teams/me", headers=admin).get_json()["id"]
    keys = client.get(f"/v1/teams/{me}/keys", headers=admin).get_json()["data"]
    old_prefix = old["Authorization"].split("_")[1]
    old_id = next(k["id"] for k in keys if k["prefix"] == old_prefix)
    assert client.get("/v1/jobs", headers=old).status_code == 200
    assert client.post(f"/v1/keys/{old_id}/revoke", headers=admin).status_code == 200
    assert client.get("/v1/jobs", headers=old).status_code == 401
    assert client.get("/v1/jobs", headers=new_headers).status_code == 200


def test_a_viewer_reads_but_cannot_submit_cancel_or_upload(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    member, viewer = make_key("alpha", role="member"), make_key("alpha", role="viewer")
    ds = upload_ner(client, member)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    job = client.post("/v1/jobs", headers=member, json=body).get_json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=viewer).status_code == 200
    assert client.post("/v1/jobs", headers=viewer, json=body).status_code == 403
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=viewer).status_code == 403
    assert upload_ner(client, viewer)["status"] == 403
    assert client.get(f"/v1/jobs/{job['id']}", headers=viewer).get_json()["state"] != "cancelled"


def test_keys_are_stored_only_as_sha256(
    client: FlaskClient, platform: Platform, make_key: KeyFactory
) -> None:
    headers = make_key("alpha")
    secret = headers["Authorization"].removeprefix("Bearer ")
    with platform.sessions() as session:
        rows = session.scalars(select(ApiKey)).all()
        dumped = " ".join(str(vars(row)) for row in rows)
    assert secret not in dumped
    assert hashlib.sha256(secret.encode()).hexdigest() in {r.key_hash for r in rows}


def test_every_mutating_call_is_audited_with_who_what_when(
    client: FlaskClient, platform: Platform, make_key: KeyFactory
) -> None:
    member = make_key("alpha")
    ds = upload_ner(client, member)
    client.get("/v1/jobs", headers=member)  # reads are not audited
    client.post("/v1/jobs", headers=member, json={"task": "nope"})  # refused, still audited
    client.post("/v1/jobs", headers={"Authorization": "Bearer bad"}, json={})
    with platform.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        key = session.scalar(select(ApiKey).where(ApiKey.role == "member"))
    assert [(r.method, r.path, r.status) for r in rows] == [
        ("POST", "/v1/datasets", 201),
        ("POST", "/v1/jobs", 422),
        ("POST", "/v1/jobs", 401),
    ]
    assert key is not None and rows[0].key_id == key.id and rows[0].team_id == key.team_id
    assert rows[2].key_id is None and all(r.at > 0 for r in rows)
    assert ds["status"] == 201


@pytest.fixture
def small_app(platform: Platform) -> Flask:
    platform.settings.max_upload_bytes = 4096
    platform.settings.rate_limit_per_s = 1.0
    platform.settings.rate_limit_burst = 3
    return create_app(platform=platform)


def test_uploads_over_the_limit_are_413_json(small_app: Flask, make_key: KeyFactory) -> None:
    client = small_app.test_client()
    resp = client.post(
        "/v1/datasets",
        headers=make_key("alpha"),
        content_type="multipart/form-data",
        data={
            "task": "token-classification",
            "format": "conll",
            "file": (io.BytesIO(b"x" * 10_000), "big.conll"),
        },
    )
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "request_entity_too_large"


def test_rate_limit_is_per_key_with_429_and_retry_after(
    small_app: Flask, make_key: KeyFactory
) -> None:
    client = small_app.test_client()
    one, two = make_key("alpha"), make_key("beta")
    codes = [client.get("/v1/jobs", headers=one).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    resp = client.get("/v1/jobs", headers=one)
    assert resp.status_code == 429 and resp.get_json()["error"]["code"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    assert client.get("/v1/jobs", headers=two).status_code == 200  # another key is unaffected


def test_rate_limit_is_shared_by_every_api_process(
    small_app: Flask, platform: Platform, make_key: KeyFactory
) -> None:
    # Two apps stand for two gunicorn workers (or replicas): the count lives in Redis,
    # so a key's burst is spent across both, not once per process.
    other = create_app(platform=platform).test_client()
    one = make_key("alpha")
    client = small_app.test_client()
    codes = [c.get("/v1/jobs", headers=one).status_code for c in (client, other, client, other)]
    assert codes == [200, 200, 200, 429]


def test_rate_limit_counts_each_route_apart(small_app: Flask, make_key: KeyFactory) -> None:
    # As Flask-Limiter's default limits did: one window per key and route.
    client = small_app.test_client()
    one = make_key("alpha")
    codes = [client.get("/v1/jobs", headers=one).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert client.get("/v1/datasets", headers=one).status_code == 200


def test_rate_limit_with_redis_unreachable_serves_the_call(
    platform: Platform, make_key: KeyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from commands.netutil import free_port

    platform.settings.rate_limit_per_s = 1.0
    platform.settings.rate_limit_burst = 1
    platform.settings.redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    client = create_app(platform=platform).test_client()
    one = make_key("alpha")
    with caplog.at_level(logging.ERROR, logger="api.guards"):
        codes = [client.get("/v1/jobs", headers=one).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert "rate limit" in caplog.text


HOSTILE = [
    "../x",
    "..",
    "a/../../etc",
    "/etc/passwd",
    "a;rm -rf /",
    "$(id)",
    "`id`",
    "a|b",
    "a&b",
    "a\nb",
    "a\x00b",
    "a b",
    "ä",
    "-rf",
    ".hidden",
    "a" * 200,
]


def test_path_traversal_and_shell_metacharacters_in_names_are_refused(
    client: FlaskClient, platform: Platform, make_key: KeyFactory
) -> None:
    headers = make_key("alpha", role="admin")
    ds = upload_ner(client, headers)
    for name in HOSTILE:
        assert upload_ner(client, headers, name=name)["status"] == 422, name
        for field in ("model_name", "base_model"):
            body = {"task": "token-classification", "train_dataset": ds["id"], field: name}
            resp = client.post("/v1/jobs", headers=headers, json=body)
            assert resp.status_code == 422, (field, name, resp.get_json())
        resp = client.put(f"/v1/models/m/aliases/{name}", headers=headers, json={"version": 1})
        # "../x" is resolved by the client to /v1/models/m/x: a read-only route (a model id
        # may hold a "/", as hub ids do), so PUT is 405 and nothing is written.
        assert resp.status_code in (404, 405, 422), name
    with platform.sessions() as session:
        assert session.scalar(select(Job.id)) is None
    assert not any(p.name.startswith("..") for p in Path(platform.settings.home).glob("**/*"))


def test_no_secret_reaches_logs_or_responses(
    tmp_path: Path, platform: Platform, make_key: KeyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = {
        "s3": "S3SECRET-do-not-log-1234",
        "flower": "FLOWERPW-do-not-log-5678",
        "webhook": "HOOKSECRET-do-not-log-9",
    }
    settings: Settings = platform.settings
    settings.s3_secret_key = secrets["s3"]
    settings.flower_password = secrets["flower"]
    settings.alert_webhook_secret = secrets["webhook"]
    client = create_app(platform=platform).test_client()
    headers = make_key("alpha", role="admin")
    api_key = headers["Authorization"].removeprefix("Bearer ")
    bodies: list[str] = []
    with caplog.at_level(logging.DEBUG):
        ds = upload_ner(client, headers)
        for method, path, kw in [
            ("GET", "/v1/teams/me", {}),
            (
                "POST",
                "/v1/jobs",
                {"json": {"task": "token-classification", "train_dataset": ds["id"]}},
            ),
            ("POST", "/v1/jobs", {"json": {"task": "x"}}),
            ("GET", "/v1/jobs/nope", {}),
            ("GET", "/healthz", {}),
            ("GET", "/metrics", {}),
        ]:
            bodies.append(
                client.open(path, method=method, headers=headers, **kw).get_data(as_text=True)
            )
        bad = headers["Authorization"][:-4] + "zzzz"  # a near miss of the real key
        bodies.append(client.get("/v1/jobs", headers={"Authorization": bad}).get_data(as_text=True))
    text = caplog.text + "\n".join(bodies)
    for value in [*secrets.values(), api_key, api_key[10:]]:
        assert value not in text
