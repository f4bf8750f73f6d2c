"""Idempotency-Key: a retried create returns the first answer and creates nothing new."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import OperationalError

import api.after_writes as after_writes
import api.jobs as api_jobs
from scheduler.ticks import run_key_expiry
from storage import idempotency
from storage.audit import AuditEvent
from storage.idempotency import IdempotencyKey
from storage.models import ApiKey, Dataset, Job, JobEvent, Team
from storage.platform import Platform
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.synthetic import conll_text


def count(platform: Platform, model: type) -> int:
    with platform.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@contextmanager
def nothing_written_after_the_response(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the process died right after answering: api.after_writes cannot reach SQL."""

    def unreachable(*_: object, **__: object) -> None:
        raise ConnectionError("database unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(after_writes, "transaction", unreachable)
        yield


def audited(platform: Platform, path: str) -> list[tuple[str, int]]:
    with platform.sessions() as session:
        rows = session.execute(
            select(AuditEvent.path, AuditEvent.status).where(AuditEvent.path == path)
        ).all()
    return [(row[0], row[1]) for row in rows]


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


def test_a_form_body_is_part_of_the_request_it_keys(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    """A urlencoded body is hashed as sent: parsing it as a form had emptied it first, so
    two different bodies with one key counted as the same request."""
    headers = {**make_key(), "Idempotency-Key": "form-1"}
    first = client.post("/v1/jobs", headers=headers, data={"task": "a"})
    assert first.status_code == 400  # not JSON: refused, and the refusal is kept
    again = client.post("/v1/jobs", headers=headers, data={"task": "a"})
    assert again.status_code == 400 and again.headers.get("Idempotent-Replayed") == "true"
    other = client.post("/v1/jobs", headers=headers, data={"task": "b"})
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"


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


def _submit_failing_in(
    name: str,
    client: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    headers: dict[str, str],
    body: dict[str, object],
) -> None:
    """Submit once with ``api.jobs.<name>`` raising: the call answers 500. Restored after."""

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError(f"{name} failed")

    monkeypatch.setattr(api_jobs, name, broken)
    client.application.config["PROPAGATE_EXCEPTIONS"] = False
    first = client.post("/v1/jobs", headers=headers, json=body)
    monkeypatch.undo()
    assert first.status_code == 500


def test_a_server_error_frees_the_key_and_the_retry_runs(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    once = {**headers, "Idempotency-Key": "flaky-1"}
    # The call fails after reserving the key, before anything is committed.
    _submit_failing_in("check_order", client, monkeypatch, once, body)
    assert count(platform, Job) == 0 and count(platform, IdempotencyKey) == 0
    again = client.post("/v1/jobs", headers=once, json=body)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert count(platform, Job) == 1


def test_an_error_after_the_commit_replays_the_job_instead_of_creating_another(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    once = {**headers, "Idempotency-Key": "late-failure-1"}
    # The job and its answer are committed; what fails comes after.
    _submit_failing_in("request_admission", client, monkeypatch, once, body)
    again = client.post("/v1/jobs", headers=once, json=body)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    with platform.sessions() as session:
        assert session.scalars(select(Job.id)).all() == [again.get_json()["id"]]


def test_an_answer_survives_when_the_writes_after_the_response_fail(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the process died after its commit: the retry still gets the job, not a 409."""
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    once = {**headers, "Idempotency-Key": "died-1"}

    with nothing_written_after_the_response(monkeypatch):
        first = client.post("/v1/jobs", headers=once, json=body)
    # Its audit row committed with the job.
    assert audited(platform, "/v1/jobs") == [("/v1/jobs", 201)]
    again = client.post("/v1/jobs", headers=once, json=body)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert count(platform, Job) == 1


def test_an_upload_commits_its_answer_and_audit_row_with_the_dataset(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {**make_key(), "Idempotency-Key": "up-died-1"}
    text = conll_text(10, seed=5)
    with nothing_written_after_the_response(monkeypatch):
        first = upload_ner(client, headers, text)
    assert first["status"] == 201, first
    assert audited(platform, "/v1/datasets") == [("/v1/datasets", 201)]
    again = upload_ner(client, headers, text)
    assert again["status"] == 201, again
    assert again["id"] == first["id"] and count(platform, Dataset) == 1


def test_an_openai_fine_tuning_job_commits_its_answer_and_audit_row_with_the_job(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    once = {**headers, "Idempotency-Key": "ft-died-1"}
    body = {"model": "all-MiniLM-L6-v2", "training_file": ds["id"]}
    with nothing_written_after_the_response(monkeypatch):
        first = client.post("/v1/fine_tuning/jobs", headers=once, json=body)
    assert first.status_code == 200, first.get_json()
    assert audited(platform, "/v1/fine_tuning/jobs") == [("/v1/fine_tuning/jobs", 200)]
    again = client.post("/v1/fine_tuning/jobs", headers=once, json=body)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"] and count(platform, Job) == 1


def test_a_retried_key_issue_replays_its_prefix_and_never_stores_the_key(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = {**make_key("alpha", role="admin"), "Idempotency-Key": "new-key-1"}
    team = client.get("/v1/teams/me", headers=headers).get_json()["id"]
    first = client.post(f"/v1/teams/{team}/keys", headers=headers, json={"role": "viewer"})
    again = client.post(f"/v1/teams/{team}/keys", headers=headers, json={"role": "viewer"})
    assert first.status_code == again.status_code == 201
    secret = first.get_json()["key"]
    assert secret.startswith("tp_")
    replay = again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert replay["key"] is None and replay["role"] == "viewer"
    assert replay["key_prefix"] == secret.split("_")[1]
    with platform.sessions() as session:
        kept = session.scalars(select(IdempotencyKey.body)).all()
        viewers = session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.role == "viewer")
        )
    assert kept and all(secret not in (body or "") for body in kept)
    assert viewers == 1  # the retry issued nothing


def _drain(platform: Platform, team: str, state: str) -> None:
    with platform.sessions.begin() as session:
        session.execute(update(Team).where(Team.name == team).values(queue_state=state))


def test_a_failed_first_call_frees_its_key_and_no_later_refusal_replaces_the_answer(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """A first call whose job's INSERT fails (503) writes nothing, its key's reservation
    included: the retry creates the job. Later retries are answered from the key before
    the view runs, so a refusal the view would meet now (the queue drains) never
    replaces that answer."""
    plain = make_key()
    body = {"task": "token-classification", "train_dataset": upload_ner(client, plain)["id"]}
    headers = {**plain, "Idempotency-Key": "late-1"}

    def down(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("INSERT INTO jobs"):
            raise OperationalError(statement, {}, Exception("the database went away"))

    event.listen(platform.engine, "before_cursor_execute", down)
    try:
        failed = client.post("/v1/jobs", headers=headers, json=body)
    finally:
        event.remove(platform.engine, "before_cursor_execute", down)
    assert failed.status_code == 503
    assert count(platform, Job) == count(platform, IdempotencyKey) == 0

    first = client.post("/v1/jobs", headers=headers, json=body)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    _drain(platform, "alpha", "draining")
    again = client.post("/v1/jobs", headers=headers, json=body)
    _drain(platform, "alpha", "open")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert count(platform, Job) == 1


def test_a_refusal_kept_under_a_key_is_replayed_once_the_view_would_accept(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """The first call was refused (the queue drained) and its answer kept. The retry would
    now pass the checks, but it is answered from its key before the view runs: it writes
    nothing and replays the refusal."""
    plain = make_key()
    body = {"task": "token-classification", "train_dataset": upload_ner(client, plain)["id"]}
    headers = {**plain, "Idempotency-Key": "late-2"}
    _drain(platform, "alpha", "draining")
    refused = client.post("/v1/jobs", headers=headers, json=body)
    assert refused.status_code == 409
    _drain(platform, "alpha", "open")
    again = client.post("/v1/jobs", headers=headers, json=body)
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == refused.get_json()
    with platform.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
        assert session.scalar(select(func.count()).select_from(JobEvent)) == 0


def test_a_submission_writes_its_rows_together(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An accepted submission with a key leaves the job, its first event, the audit row
    and the kept answer, all of them."""
    # As in production, the admission pass is deferred to the control worker (the other
    # tests run it inline).
    monkeypatch.setattr(
        platform, "settings", platform.settings.model_copy(update={"admission_coalesce_s": 0.5})
    )
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    resp = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "cost-1"}, json=body)
    assert resp.status_code == 201
    # Every row is there: the job with its defaults, the kept answer, the audit row, the event.
    with platform.sessions() as session:
        job = session.get(Job, resp.get_json()["id"])
        assert job is not None and job.state == "pending" and job.attempt == 0
        kept = idempotency.find(session, job.team_id, "cost-1")
        assert kept is not None and kept.status == 201
        assert json.loads(kept.body or "") == resp.get_json()
        audited = select(AuditEvent.status).where(AuditEvent.path == "/v1/jobs")
        assert list(session.scalars(audited)) == [201]
        events = select(JobEvent.new_state).where(JobEvent.job_id == job.id)
        assert list(session.scalars(events)) == ["pending"]


def test_keys_older_than_the_keep_window_are_swept_and_may_be_used_again(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    body = {"task": "token-classification", "train_dataset": ds["id"]}
    old = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "old-1"}, json=body)
    with platform.sessions.begin() as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "old-1")
            .values(created_at=time.time() - platform.settings.idempotency_keep_s - 60)
        )
    young = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "young-1"}, json=body)
    assert old.status_code == young.status_code == 201

    assert run_key_expiry(platform) == 1
    with platform.sessions() as session:
        assert session.scalars(select(IdempotencyKey.key)).all() == ["young-1"]
    # The young key still replays; the swept one runs as a new request.
    replay = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "young-1"}, json=body)
    assert replay.get_json()["id"] == young.get_json()["id"]
    reused = client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "old-1"}, json=body)
    assert reused.status_code == 201 and "Idempotent-Replayed" not in reused.headers
    assert reused.get_json()["id"] != old.get_json()["id"]
