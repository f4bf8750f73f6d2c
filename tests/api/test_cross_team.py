"""Team B against team A: every route that takes an id, and every way to name A's model.

Another team's thing answers exactly like a missing one: the same status and the same
body once A's id is swapped for a missing one, and nothing of A's in it. The matrix is
built from the app's url_map, so a new route with an id fails here until it is added.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from storage.alerts import Incident
from storage.db import transaction
from storage.ids import new_id
from storage.models import ApiKey, Checkpoint, Job, Team
from storage.platform import Platform
from storage.schedules import Schedule, ScheduleRun
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner
from tests.api.models_helpers import publish_version
from tests.conftest import TINY_BASE_MODEL

A_TEAM, B_TEAM = "team-a-private", "team-b"
A_MODEL = "a-secret-ner"
EVAL_CONLL = "Alice B-PER\nwent O\nhome O\n\nBob B-PER\nsaw O\nMaria B-PER\n\n"


@dataclass
class TeamA:
    team_id: str
    key_id: str
    key_prefix: str
    dataset: str
    evaluation: str
    job: str
    schedule: str
    model_prefix: str
    checkpoint_prefix: str

    def secrets(self) -> list[str]:
        """Strings of A's that B must never read back (beyond what B itself sent)."""
        return [
            self.team_id,
            A_TEAM,
            self.key_id,
            self.key_prefix,
            self.dataset,
            self.evaluation,
            self.job,
            self.schedule,
            A_MODEL,
            self.model_prefix,
            self.checkpoint_prefix,
        ]


@pytest.fixture
def team_a(
    client: FlaskClient, platform: Platform, make_key: KeyFactory, tiny_base_models: dict[str, str]
) -> TeamA:
    """Team A with one of everything: data, a job with a checkpoint, a model with an
    alias, a schedule, a second key and an alert."""
    headers = make_key(A_TEAM, role="admin")
    dataset = upload_ner(client, headers, name="a-secret-data")
    evaluation = upload_ner(client, headers, text=EVAL_CONLL, name="a-secret-eval")
    assert dataset["status"] == evaluation["status"] == 201
    job = client.post(
        "/v1/fine_tuning/jobs",
        headers=headers,
        json={"model": "all-MiniLM-L6-v2", "training_file": dataset["id"]},
    ).get_json()
    assert job["object"] == "fine_tuning.job", job
    mv = publish_version(platform, A_TEAM, A_MODEL, Path(tiny_base_models[TINY_BASE_MODEL]))
    put = client.put(
        f"/v1/models/{A_MODEL}/aliases/production", headers=headers, json={"version": 1}
    )
    assert put.status_code == 200
    schedule = client.post(
        "/v1/schedules",
        headers=headers,
        json={
            "model_name": A_MODEL,
            "dataset_name": "a-secret-data",
            "cron": "0 3 * * *",
            "evaluation_dataset": evaluation["id"],
        },
    )
    assert schedule.status_code == 201, schedule.get_json()
    make_key(A_TEAM, role="viewer")
    with transaction(platform.sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == A_TEAM))
        assert team_id is not None
        key = session.scalars(select(ApiKey).where(ApiKey.team_id == team_id)).first()
        assert key is not None
        checkpoint_prefix = f"teams/{team_id}/jobs/{job['id']}/checkpoints/step-5/"
        session.add(
            Checkpoint(job_id=job["id"], attempt=1, step=5, epoch=1.0, prefix=checkpoint_prefix)
        )
        now = time.time()
        session.add(
            Incident(
                rule="job_failed",
                subject=f"{team_id}|{job['id']}",
                team_id=team_id,
                severity="warning",
                state="open",
                summary=f"job {job['id']} of {A_TEAM} failed",
                details={"job": job["id"]},
                opened_at=now,
                last_seen_at=now,
            )
        )
        key_id, key_prefix = key.id, key.prefix
    return TeamA(
        team_id=team_id,
        key_id=key_id,
        key_prefix=key_prefix,
        dataset=dataset["id"],
        evaluation=evaluation["id"],
        job=job["id"],
        schedule=schedule.get_json()["id"],
        model_prefix=mv.prefix,
        checkpoint_prefix=checkpoint_prefix,
    )


# -- every route with an id ---------------------------------------------------------------

# Static files (the dashboard, the API docs page): the same for every caller.
NO_TEAM_DATA = {"static", "ui.asset", "api_docs.asset"}

# endpoint -> method -> request variants (JSON body, query string). The bodies are valid,
# so that only ownership can refuse them.
MATRIX: dict[str, dict[str, list[dict[str, Any]]]] = {
    "datasets.show": {"GET": [{}]},
    "openai_compat.show_file": {"GET": [{}]},
    "jobs.show": {"GET": [{}]},
    "job_priority.edit": {"PATCH": [{"json": {"priority": "low"}}]},
    "jobs.cancel": {"POST": [{}]},
    "jobs.events": {"GET": [{}, {"query_string": {"follow": "1"}}]},
    "events_stream.logs": {"GET": [{}, {"query_string": {"follow": "1"}}]},
    "model_jobs.output": {"GET": [{}]},
    "openai_compat.retrieve_job": {"GET": [{}]},
    "openai_compat.cancel_job": {"POST": [{}]},
    "openai_compat.list_checkpoints": {"GET": [{}]},
    "openai_compat.list_events": {"GET": [{}]},
    "teams.revoke_key": {"POST": [{}]},
    "teams.update": {"PATCH": [{"json": {"queue_state": "held"}}]},
    "teams.list_keys": {"GET": [{}]},
    "teams.new_key": {"POST": [{"json": {"role": "viewer"}}]},
    "models.show_model": {"GET": [{}]},
    "openai_models.retrieve_path": {"GET": [{}]},
    "models.list_versions": {"GET": [{}]},
    "models.show_version": {"GET": [{}]},
    "models.put_alias": {"PUT": [{"json": {"version": 1, "reason": "mine now"}}]},
    "models.rollback_alias": {"POST": [{"json": {"reason": "mine now"}}]},
    "models.history": {"GET": [{}]},
    "models.download": {"GET": [{}]},
    "models.predict": {"POST": [{"json": {"inputs": ["Alice visited Paris"]}}]},
    "schedules.show": {"GET": [{}]},
    "schedules.update": {"PATCH": [{"json": {"enabled": False}}]},
    "schedules.remove": {"DELETE": [{}]},
    "schedules.run_now": {"POST": [{}]},
    "schedules.runs": {"GET": [{}]},
}


def _url_values(a: TeamA) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(A's values, missing values of the same shape) for every URL argument; ``ref`` in
    each form a caller may use."""
    base = {
        "job_id": (a.job, new_id("job")),
        "dataset_id": (a.dataset, new_id("ds")),
        "file_id": (a.dataset, new_id("ds")),
        "schedule_id": (a.schedule, new_id("sch")),
        "key_id": (a.key_id, new_id("key")),
        "ident": (a.team_id, new_id("team")),
        "name": (A_MODEL, "no-such-model"),
        # OpenAI's models.retrieve of a name with a "/", and of A's job's ft: name.
        "model_id": (f"ft:tiny:t:x:{a.job}", f"ft:tiny:t:x:{new_id('job')}"),
        "alias": ("production", "production"),
        "version": (1, 1),
    }
    for form in ("{}@production", "{}:1", "{}"):
        values = {**base, "ref": (form.format(A_MODEL), form.format("no-such-model"))}
        yield {k: v[0] for k, v in values.items()}, {k: v[1] for k, v in values.items()}


def _text(resp: TestResponse) -> str:
    return resp.get_data(as_text=True)


def test_every_route_with_an_id_is_in_the_matrix(app: Flask) -> None:
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint in NO_TEAM_DATA:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method not in MATRIX.get(rule.endpoint, {}):
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    assert not missing, "routes with ids missing from the cross-team MATRIX:\n" + "\n".join(missing)


def test_team_b_using_team_a_ids_gets_exactly_the_404_of_a_missing_thing(
    app: Flask, client: FlaskClient, make_key: KeyFactory, team_a: TeamA
) -> None:
    b = make_key(B_TEAM, role="admin")
    adapter = app.url_map.bind("localhost")
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint in NO_TEAM_DATA:
            continue
        for method, variants in MATRIX[rule.endpoint].items():
            for theirs, missing in _url_values(team_a):
                swaps = [
                    (str(theirs[k]), str(missing[k]))
                    for k in rule.arguments
                    if theirs[k] != missing[k]
                ] + [(A_MODEL, "no-such-model")]  # a reference's name, quoted alone
                for kw in variants:
                    path = adapter.build(rule.endpoint, {k: theirs[k] for k in rule.arguments})
                    resp = client.open(path, method=method, headers=b, **kw)
                    where = f"{method} {path} {kw}"
                    assert resp.status_code == 404, (where, _text(resp))
                    body = _text(resp)
                    for mine, other in swaps:
                        body = body.replace(mine, other)
                    leaked = [s for s in team_a.secrets() if s in body]
                    assert not leaked, (where, leaked, _text(resp))
                    path = adapter.build(rule.endpoint, {k: missing[k] for k in rule.arguments})
                    like = client.open(path, method=method, headers=b, **kw)
                    assert (like.status_code, _text(like)) == (404, body), where
                    checked += 1
    assert checked >= 3 * len(MATRIX)
    # Nothing of A's moved: its job, schedule, alias and keys are as they were.
    a = make_key(A_TEAM, role="admin")
    assert client.get(f"/v1/jobs/{team_a.job}", headers=a).get_json()["priority"] == "normal"
    assert client.get(f"/v1/schedules/{team_a.schedule}", headers=a).get_json()["enabled"]
    shown = client.get(f"/v1/models/{A_MODEL}", headers=a).get_json()
    assert shown["aliases"] == {"production": 1}
    assert client.get("/v1/teams/me", headers=a).get_json()["queue_state"] == "open"
    keys = client.get(f"/v1/teams/{team_a.team_id}/keys", headers=a).get_json()["data"]
    assert all(k["revoked_at"] is None for k in keys)


# Team-scoped lists; /v1/pool shows other teams by name and size only (by design).
LISTS = [
    "/v1/jobs",
    "/v1/datasets",
    "/v1/files",
    "/v1/models",
    "/v1/schedules",
    "/v1/fine_tuning/jobs",
    "/v1/alerts",
    "/v1/teams",
    "/v1/teams/me",
    "/v1/pool",
]


def test_team_b_lists_show_nothing_of_team_a(
    client: FlaskClient, make_key: KeyFactory, team_a: TeamA
) -> None:
    b = make_key(B_TEAM, role="admin")
    for path in LISTS:
        resp = client.get(path, headers=b)
        assert resp.status_code == 200, (path, _text(resp))
        shared = {A_TEAM} if path == "/v1/pool" else set()
        leaked = [s for s in team_a.secrets() if s in _text(resp) and s not in shared]
        assert not leaked, (path, leaked)


def test_team_b_naming_team_a_ids_in_a_body_is_refused_like_a_missing_id(
    client: FlaskClient, make_key: KeyFactory, team_a: TeamA
) -> None:
    b = make_key(B_TEAM, role="admin")
    own = upload_ner(client, b, name="b-data")["id"]
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        (
            "/v1/jobs",
            {"task": "token-classification", "train_dataset": "{}"},
            "train_dataset",
            "ds",
        ),
        (
            "/v1/jobs",
            {"task": "token-classification", "train_dataset": own, "validation_dataset": "{}"},
            "validation_dataset",
            "ds",
        ),
        ("/v1/jobs", {"type": "inference", "model": "{}", "dataset": own}, "model", "model"),
        ("/v1/jobs", {"type": "compress", "model": "{}"}, "model", "model"),
        ("/v1/fine_tuning/jobs", {"model": "minilm", "training_file": "{}"}, "training_file", "ds"),
        (
            "/v1/schedules",
            {
                "model_name": "b-ner",
                "dataset_name": "b-data",
                "cron": "0 3 * * *",
                "evaluation_dataset": "{}",
            },
            "evaluation_dataset",
            "ds",
        ),
        (
            "/v1/schedules",
            {
                "model_name": "b",
                "dataset_name": "{}",
                "cron": "0 3 * * *",
                "evaluation_dataset": own,
            },
            "dataset_name",
            "dsname",
        ),
    ]
    theirs = {
        "ds": team_a.dataset,
        "model": f"{A_MODEL}@production",
        "dsname": "a-secret-data",
    }
    missing = {"ds": new_id("ds"), "model": "no-such-model@production", "dsname": "no-such-data"}
    for path, template, field, kind in cases:

        def filled(value: str, template: dict[str, Any] = template) -> dict[str, Any]:
            return {k: value if v == "{}" else v for k, v in template.items()}

        resp = client.post(path, headers=b, json=filled(theirs[kind]))
        assert resp.status_code == 422, (path, field, _text(resp))
        assert resp.get_json()["error"]["field"] == field, (path, _text(resp))
        like = client.post(path, headers=b, json=filled(missing[kind]))
        text = _text(resp).replace(theirs[kind], missing[kind]).replace(A_MODEL, "no-such-model")
        assert text == _text(like), (path, field)
    assert _b_rows(client, b) == (0, 0)


def _b_rows(client: FlaskClient, b: dict[str, str]) -> tuple[int, int]:
    jobs = client.get("/v1/jobs", headers=b).get_json()["data"]
    schedules = client.get("/v1/schedules", headers=b).get_json()["data"]
    return len(jobs), len(schedules)


def test_revoking_another_teams_key_is_the_404_of_a_missing_key(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    a = make_key(A_TEAM, role="admin")
    b = make_key(B_TEAM, role="admin")
    with platform.sessions() as session:
        a_team = session.scalar(select(Team.id).where(Team.name == A_TEAM))
        a_key = session.scalar(select(ApiKey.id).where(ApiKey.team_id == a_team))
    assert a_team is not None and a_key is not None
    theirs = client.post(f"/v1/keys/{a_key}/revoke", headers=b)
    missing_id = new_id("key")
    missing = client.post(f"/v1/keys/{missing_id}/revoke", headers=b)
    assert theirs.status_code == missing.status_code == 404
    assert a_team not in _text(theirs)
    assert _text(theirs).replace(a_key, missing_id) == _text(missing)
    assert client.get("/v1/teams/me", headers=a).status_code == 200  # still valid


# -- base_model: the attack of issue 20 ---------------------------------------------------


def _attacks(platform: Platform, a: TeamA) -> list[str]:
    """Every way B could name A's stored model, and names that are simply not allowed."""
    store_root = platform.settings.resolved_object_store_url.removeprefix("file://")
    on_disk = f"{store_root}/{a.model_prefix}"
    return [
        on_disk,
        on_disk.rstrip("/"),
        f"file://{on_disk}",
        a.model_prefix,
        a.model_prefix.rstrip("/"),
        f"{platform.settings.resolved_object_store_url}/{a.model_prefix}",
        f"s3://tunepool/{a.model_prefix}",
        f"objects/../{a.model_prefix}",
        A_MODEL,
        f"{A_MODEL}:1",
        f"{A_MODEL}@production",
        f"ft:{A_MODEL}:1",
        f"ft:{A_MODEL}@production",
        "https://huggingface.co/bert-base-cased",
        "gpt-4o-mini",
        "b-ner@no-such-alias",
        "b-ner:9",
        "noop:succeed",  # the no-op engine is off here
    ]


def _refusal_lists_what_is_allowed(message: str) -> None:
    for allowed in ("all-MiniLM-L6-v2", TINY_BASE_MODEL, "name:version", "name@alias", "ft:"):
        assert allowed in message, message


def test_team_b_cannot_start_anything_from_team_a_model_by_any_name(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    team_a: TeamA,
    tiny_base_models: dict[str, str],
) -> None:
    b = make_key(B_TEAM, role="admin")
    own = upload_ner(client, b, name="b-data")["id"]
    evaluation = upload_ner(client, b, text=EVAL_CONLL, name="b-eval")["id"]
    publish_version(platform, B_TEAM, "b-ner", Path(tiny_base_models[TINY_BASE_MODEL]))
    with platform.sessions() as session:
        jobs_before = session.scalar(select(func.count()).select_from(Job))
    for name in _attacks(platform, team_a):
        native = client.post(
            "/v1/jobs",
            headers=b,
            json={
                "task": "token-classification",
                "train_dataset": own,
                "base_model": name,
                "hyperparameters": {"learning_rate": 1e-9},
            },
        )
        assert native.status_code == 422, (name, _text(native))
        error = native.get_json()["error"]
        assert error["field"] == "base_model", (name, error)
        _refusal_lists_what_is_allowed(error["message"])
        assert team_a.team_id not in error["message"] or team_a.team_id in name, error

        openai = client.post(
            "/v1/fine_tuning/jobs", headers=b, json={"model": name, "training_file": own}
        )
        assert openai.status_code == 422, (name, _text(openai))
        assert openai.get_json()["error"]["field"] == "model", (name, _text(openai))

        scheduled = client.post(
            "/v1/schedules",
            headers=b,
            json={
                "model_name": "b-ner",
                "dataset_name": "b-data",
                "cron": "0 3 * * *",
                "evaluation_dataset": evaluation,
                "base": "base_model",
                "base_model": name,
            },
        )
        assert scheduled.status_code == 422, (name, _text(scheduled))
        assert scheduled.get_json()["error"]["field"] == "base_model", _text(scheduled)
    with platform.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == jobs_before
        assert session.scalar(select(func.count()).select_from(Schedule)) == 1  # A's only

    # What B may use: the allow-list, and its own models in every form.
    client.put("/v1/models/b-ner/aliases/production", headers=b, json={"version": 1})
    for name in ("all-MiniLM-L6-v2", "minilm", TINY_BASE_MODEL, "b-ner", "b-ner:1"):
        body = {"task": "token-classification", "train_dataset": own, "base_model": name}
        assert client.post("/v1/jobs", headers=b, json=body).status_code == 201, name
    for name in ("b-ner@production", "ft:b-ner:1"):
        resp = client.post(
            "/v1/fine_tuning/jobs", headers=b, json={"model": name, "training_file": own}
        )
        assert resp.status_code == 200, (name, _text(resp))
        assert resp.get_json()["model"] == name


def test_noop_base_models_only_where_the_settings_allow_them(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    b = make_key(B_TEAM)
    own = upload_ner(client, b)["id"]
    body = {"task": "token-classification", "train_dataset": own, "base_model": "noop:succeed"}
    assert client.post("/v1/jobs", headers=b, json=body).status_code == 422
    platform.settings.allow_noop_engine = True
    assert client.post("/v1/jobs", headers=b, json=body).status_code == 201


def test_allow_listed_names_cost_the_submit_no_registry_lookup(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    """The submit path is benchmarked: only registry references read model_versions."""
    from sqlalchemy import event

    b = make_key(B_TEAM)
    own = upload_ner(client, b)["id"]
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(platform.engine, "before_cursor_execute", seen)
    try:
        for name in ("all-MiniLM-L6-v2", TINY_BASE_MODEL):
            body = {"task": "token-classification", "train_dataset": own, "base_model": name}
            assert client.post("/v1/jobs", headers=b, json=body).status_code == 201
        assert statements and not [s for s in statements if "model_versions" in s]
        body = {"task": "token-classification", "train_dataset": own, "base_model": "b-ner"}
        assert client.post("/v1/jobs", headers=b, json=body).status_code == 422
        assert [s for s in statements if "model_versions" in s]
    finally:
        event.remove(platform.engine, "before_cursor_execute", seen)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_worker_never_trains_from_a_path_a_job_row_names(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, team_a: TeamA
) -> None:
    """A row accepted before the allow-list (or written by anything else) naming A's files
    fails on the worker by the same rule, without reading them."""
    from worker.envelope import run_job

    with transaction(platform.sessions) as session:
        # Two slots: A's waiting job takes one.
        register(session, WorkerInfo("w1", "host", "tunepool.worker.w1", 2))
    b = make_key(B_TEAM)
    own = upload_ner(client, b, name="b-data")["id"]
    job = client.post(
        "/v1/jobs",
        headers=b,
        json={"task": "token-classification", "train_dataset": own, "base_model": "minilm"},
    ).get_json()
    assert job["worker"] == "w1", job
    store_root = platform.settings.resolved_object_store_url.removeprefix("file://")
    stolen = f"{store_root}/{team_a.model_prefix}"
    with transaction(platform.sessions) as session:
        row = session.get(Job, job["id"])
        assert row is not None
        row.spec = {**row.spec, "base_model": stolen}
    assert run_job(platform, job["id"], "w1") == "failed"
    shown = client.get(f"/v1/jobs/{job['id']}", headers=b).get_json()
    assert shown["error"].startswith("base_model: "), shown["error"]
    _refusal_lists_what_is_allowed(shown["error"])
    assert shown["model_version_id"] is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_schedule_whose_base_model_is_no_longer_allowed_fails_its_run_without_a_job(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, team_a: TeamA
) -> None:
    b = make_key(B_TEAM)
    upload_ner(client, b, name="b-data")
    evaluation = upload_ner(client, b, text=EVAL_CONLL, name="b-eval")["id"]
    created = client.post(
        "/v1/schedules",
        headers=b,
        json={
            "model_name": "b-ner",
            "dataset_name": "b-data",
            "cron": "0 3 * * *",
            "evaluation_dataset": evaluation,
            "base": "base_model",
            "base_model": TINY_BASE_MODEL,
        },
    )
    assert created.status_code == 201, created.get_json()
    with transaction(platform.sessions) as session:
        session.execute(
            update(Schedule)
            .where(Schedule.id == created.get_json()["id"])
            .values(base_model=team_a.model_prefix)
        )
    run = client.post(f"/v1/schedules/{created.get_json()['id']}/run", headers=b).get_json()
    assert run["outcome"] == "failed" and run["job_id"] is None, run
    assert run["reason"].startswith("base_model: "), run["reason"]
    with platform.sessions() as session:
        b_team = session.scalar(select(Team.id).where(Team.name == B_TEAM))
        assert session.scalar(select(func.count()).where(Job.team_id == b_team)) == 0
        assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 1
