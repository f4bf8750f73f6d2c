"""One bad number must not stop the pool: NaN and infinities are refused at the door, and a
row the scheduler cannot read is set aside (failed, with a reason and an alert) while every
other team's jobs are still admitted (issue 20, item 16)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, get_args

import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel
from sqlalchemy import select, text

from scheduler.alerts.rules import Context, job_set_aside
from scheduler.reconciler import run_reconciler
from scheduler.ticks import run_reaper
from storage.db import transaction
from storage.models import Job, JobEvent, Team
from storage.platform import Platform
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.settings import Settings

BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


def _with(body: dict, number: str) -> str:
    """The JSON text of ``body`` with the bare ``number`` where it says "NUMBER"."""
    return json.dumps(body).replace('"NUMBER"', number)


def _post_raw(client: FlaskClient, path: str, headers: dict[str, str], body: str) -> tuple:
    resp = client.post(path, headers=headers, data=body, content_type="application/json")
    return resp.status_code, resp.get_json()


@pytest.mark.parametrize("number", BAD_NUMBERS)
def test_a_non_finite_number_is_refused_naming_where_it_is(
    client: FlaskClient, make_key: KeyFactory, number: str
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    for validate_only in (False, True):
        body = {
            "task": "token-classification",
            "train_dataset": ds["id"],
            "validate_only": validate_only,
            "hyperparameters": {"epochs": 1, "learning_rate": "NUMBER"},
        }
        status, answer = _post_raw(client, "/v1/jobs", headers, _with(body, number))
        assert status == 400, answer
        assert answer["error"]["field"] == "hyperparameters.learning_rate"
        assert number in answer["error"]["message"]
    # Every route reads JSON the same way, also those that read it leniently.
    for path, body in [
        (
            "/v1/fine_tuning/jobs",
            {
                "model": "m",
                "training_file": ds["id"],
                "hyperparameters": {"learning_rate_multiplier": "NUMBER"},
            },
        ),
        (
            "/v1/schedules",
            {
                "model_name": "m",
                "dataset_name": "ner",
                "evaluation_dataset": ds["id"],
                "promotion": {"min_margin": "NUMBER"},
            },
        ),
    ]:
        status, answer = _post_raw(client, path, headers, _with(body, number))
        assert status == 400, (path, answer)
        assert number in answer["error"]["message"]
    assert client.get("/v1/jobs", headers=headers).get_json()["data"] == []


def _bad_rows(platform: Platform, team_id: str) -> dict[str, str]:
    """Pending jobs whose spec the passes cannot read, written as the bug wrote them."""
    texts = {"wrong type": '{"task": "token-classification", "estimated_runtime_s": "soon"}'}
    if platform.engine.dialect.name == "sqlite":
        # Python's json.dumps wrote the submitted NaN as a bare word: not JSON to SQLite.
        texts["nan"] = '{"task": "token-classification", "hyperparameters": {"learning_rate": NaN}}'
        texts["cut short"] = '{"task": "token-clas'
    ids = {}
    with transaction(platform.sessions) as session:
        for name, raw in texts.items():
            job = Job(
                team_id=team_id,
                type="finetune",
                task="token-classification",
                spec={},
                state="pending",
                created_at=time.time() - 60,  # older: first in line
            )
            session.add(job)
            session.flush()
            session.execute(
                text("UPDATE jobs SET spec = :raw WHERE id = :id"), {"raw": raw, "id": job.id}
            )
            ids[name] = job.id
    return ids


def test_a_row_the_pass_cannot_read_is_set_aside_and_other_teams_are_admitted(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    with transaction(platform.sessions) as session:
        alpha_id = session.scalar(select(Team.id).where(Team.name == "alpha"))
        register(session, WorkerInfo("w1", "host", "tunepool.worker.w1", 4))
    bad = _bad_rows(platform, alpha_id)
    ds = upload_ner(client, beta)
    resp = client.post(
        "/v1/jobs", headers=beta, json={"task": "token-classification", "train_dataset": ds["id"]}
    )
    assert resp.status_code == 201
    assert resp.get_json()["state"] == "queued", resp.get_json()

    # The reaper's pass goes on too.
    run_reaper(platform)
    with platform.sessions() as session:
        for name, job_id in bad.items():
            job = session.get(Job, job_id)
            assert job is not None
            assert job.state == "failed", name
            assert job.error and "set aside" in job.error, name
            assert isinstance(job.spec, dict)
            events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
            assert [e.new_state for e in events] == ["failed"]
        # The set-aside row is readable again: strict JSON, a NaN kept as null.
        if "nan" in bad:
            spec = session.get(Job, bad["nan"]).spec  # type: ignore[union-attr]
            assert spec["hyperparameters"] == {"learning_rate": None}
        firing = job_set_aside(Context(session, platform.settings, None, time.time()))
    assert {f.subject for f in firing} == {f"job:{job_id}" for job_id in bad.values()}
    assert all(f.team_id is None and f.severity == "error" for f in firing)
    # Alpha's own listing reads its failed jobs.
    listed = client.get("/v1/jobs?state=failed", headers=alpha)
    assert listed.status_code == 200
    assert {j["id"] for j in listed.get_json()["data"]} == set(bad.values())


def test_the_database_never_stores_a_non_finite_number(platform: Platform) -> None:
    with transaction(platform.sessions) as session:
        team = Team(name="gamma")
        session.add(team)
        session.flush()
        job = Job(
            team_id=team.id,
            type="finetune",
            task="token-classification",
            spec={},
            state="pending",
            metrics={"loss": float("nan"), "curve": [1.0, float("inf")]},
        )
        session.add(job)
        session.flush()
        job_id = job.id
    with platform.sessions() as session:
        # The column as the database holds it (a str on SQLite, parsed by the driver on PG).
        raw = session.scalar(text("SELECT metrics FROM jobs WHERE id = :id"), {"id": job_id})
    stored = raw if isinstance(raw, dict) else json.loads(raw)
    assert stored == {"loss": None, "curve": [1.0, None]}


def test_the_reconciler_republishes_a_queued_job_whatever_its_spec(platform: Platform) -> None:
    """It needs the job's id, type and worker only: a spec no reader can parse (written by
    hand or by a bug) must not stop it for the other queued jobs."""
    if platform.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL checks JSON on write: such a spec cannot be stored there")
    with transaction(platform.sessions) as session:
        team = Team(name="delta")
        session.add(team)
        session.flush()
        ids = []
        for raw in ('{"task": "token-clas', '{"hyperparameters": {"learning_rate": NaN}}', "{}"):
            job = Job(
                team_id=team.id,
                type="finetune",
                task="token-classification",
                spec={},
                state="queued",
                worker_name="w1",
                queued_at=time.time() - 600,
            )
            session.add(job)
            session.flush()
            session.execute(
                text("UPDATE jobs SET spec = :raw WHERE id = :id"), {"raw": raw, "id": job.id}
            )
            ids.append(job.id)
    assert sorted(run_reconciler(platform)) == sorted(ids)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def test_every_request_schema_refuses_non_finite_numbers(tmp_path: Path) -> None:
    """A body built in code (a nested call, a test client) never met the JSON reader: the
    schemas refuse NaN and infinities themselves, nested models included."""
    from api.app import create_app
    from api.openapi import COMPONENTS, spec

    platform = Platform(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}"))
    views = create_app(platform=platform).view_functions.values()
    platform.close()
    documented = [spec.get_function_metadata(view) for view in views]
    seen: set[type[BaseModel]] = set()
    todo = [COMPONENTS[m.json] for m in documented if m is not None and m.json is not None]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        assert model.model_config.get("allow_inf_nan") is False, model.__name__
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    assert len(seen) >= 10
