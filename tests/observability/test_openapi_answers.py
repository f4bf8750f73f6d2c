"""Real answers of the API against the OpenAPI document: every status a call gets is
documented for its operation, in the media type it comes in, and every JSON body
matches the schema documented for it (the response models of api/*responses.py,
api/openai_objects.py and api/chat_schemas.py, with extra fields forbidden).

One walk through the API with a real serving worker: uploads, jobs, the registry,
predictions, chat, teams and keys, schedules, alerts, the pool, and errors of each
kind (401, 403, 404, 409, 422, 400)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_schema_validator import OAS31Validator
from sqlalchemy import select
from werkzeug.test import TestResponse

from storage.alerts import Incident
from storage.db import transaction
from storage.models import Team
from storage.platform import Platform
from storage.teams import create_team
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory
from tests.api.models_helpers import publish_version
from tests.conftest import TINY_BASE_MODEL, TINY_CHAT_BASE
from tests.inference.tiny import NER_LABELS, tiny_model_dir
from tests.serving_process import ServingProcess
from tunepool.synthetic import conll_text

PARAM = re.compile(r"{(\w+)}")


class DocumentedApi:
    """Calls by operation (method and documented path), each answer checked against the
    document; remembers which operations were called."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.doc = client.get("/openapi.json").get_json()
        self.called: set[tuple[str, str]] = set()

    def __call__(
        self, method: str, path: str, expect: int, headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> TestResponse:  # fmt: skip
        params = {name: kwargs.pop(name) for name in PARAM.findall(path)}
        resp = self.client.open(
            path.format(**params), method=method.upper(), headers=headers or {}, **kwargs
        )
        assert resp.status_code == expect, (method, path, resp.status_code, resp.data[:500])
        self.check(method, path, resp)
        self.called.add((method, path))
        return resp

    def check(self, method: str, path: str, resp: TestResponse) -> None:
        label = f"{method.upper()} {path} -> {resp.status_code}"
        answer = self.doc["paths"][path][method]["responses"].get(str(resp.status_code))
        assert answer is not None, f"{label}: status not documented"
        content = answer.get("content")
        if not content:
            assert 300 <= resp.status_code < 400, f"{label}: a body nobody documented"
            return
        assert resp.mimetype in content, f"{label}: {resp.mimetype} not in {list(content)}"
        schema = content[resp.mimetype].get("schema")
        if schema is not None:
            validator = OAS31Validator(
                {**schema, "components": self.doc["components"]},
                format_checker=OAS31Validator.FORMAT_CHECKER,
            )
            errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(resp.json)]
            assert not errors, f"{label}: " + "\n".join(errors[:5])


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("ner"), NER_LABELS, bias_to="B-PER")


def conll(name: str, n: int = 20, seed: int = 3) -> dict[str, Any]:
    return {
        "content_type": "multipart/form-data",
        "data": {
            "task": "token-classification",
            "format": "conll",
            "name": name,
            "file": (io.BytesIO(conll_text(n, seed=seed).encode()), f"{name}.conll"),
        },
    }


def walk_public_routes(call: DocumentedApi) -> None:
    call("get", "/healthz", 200)
    readiness = call("get", "/readyz", 200).get_json()
    assert readiness["status"] == "ok"
    assert call("get", "/metrics", 200).mimetype == "text/plain"
    call("get", "/openapi.json", 200)
    call("get", "/docs", 200)
    call("get", "/docs/{name}", 200, name="docs.js")
    call("get", "/docs/{name}", 200, name="swagger-ui/swagger-ui.css")
    call("get", "/docs/{name}", 404, name="nothing.js")
    call("get", "/", 302)
    call("get", "/ui", 308)
    call("get", "/ui/", 200)
    call("get", "/ui/{name}", 200, name="app.js")
    call("get", "/ui/{name}", 404, name="nothing.js")


def walk_native_routes(
    call: DocumentedApi, make_key: KeyFactory, platform: Platform, ner_dir: Path
) -> None:
    alpha = make_key("alpha", role="admin")
    viewer = make_key("alpha", role="viewer")
    call("get", "/v1/jobs", 401)
    call("post", "/v1/jobs", 403, viewer, json={})

    # Datasets.
    dataset = call("post", "/v1/datasets", 201, alpha, **conll("ner")).get_json()
    evaluation = call("post", "/v1/datasets", 201, alpha, **conll("ner-eval", 10, 4))
    bad = conll("x")
    bad["data"]["task"] = "poetry"
    call("post", "/v1/datasets", 422, alpha, **bad)
    call("get", "/v1/datasets", 200, alpha)
    call("get", "/v1/datasets/{dataset_id}", 200, alpha, dataset_id=dataset["id"])
    call("get", "/v1/datasets/{dataset_id}", 404, alpha, dataset_id="ds_missing")

    # Jobs: a check, a job that waits (no worker yet), its history, an edit, a cancel.
    submit = {"task": "token-classification", "train_dataset": dataset["id"]}
    call("post", "/v1/jobs", 200, alpha, json={**submit, "validate_only": True})
    call("post", "/v1/jobs", 400, alpha, data='{"n": NaN}', content_type="application/json")
    call("post", "/v1/jobs", 422, alpha, json={**submit, "priority": "urgent"})
    job = call("post", "/v1/jobs", 201, alpha, json=submit).get_json()
    assert job["state"] == "pending"
    call("get", "/v1/jobs", 200, alpha, query_string={"state": "pending"})
    call("get", "/v1/jobs", 422, alpha, query_string={"limit": 0})
    call("get", "/v1/jobs/{job_id}", 200, alpha, job_id=job["id"])
    call("get", "/v1/jobs/{job_id}", 404, alpha, job_id="job_missing")
    call("patch", "/v1/jobs/{job_id}", 200, alpha, job_id=job["id"], json={"priority": "low"})
    events = call("get", "/v1/jobs/{job_id}/events", 200, alpha, job_id=job["id"]).get_json()
    assert events["data"], events
    call("get", "/v1/jobs/{job_id}/logs", 200, alpha, job_id=job["id"])
    call("get", "/v1/jobs/{job_id}/output", 404, alpha, job_id=job["id"])
    call("post", "/v1/jobs/{job_id}/cancel", 200, alpha, job_id=job["id"])
    call("post", "/v1/jobs/{job_id}/cancel", 409, alpha, job_id=job["id"])
    call("patch", "/v1/jobs/{job_id}", 409, alpha, job_id=job["id"], json={"priority": "high"})

    # The pool, with a worker that takes the next job.
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host", "tunepool.worker.w1", 2, [{"index": 0}]))
    placed = call("post", "/v1/jobs", 201, alpha, json=submit).get_json()
    pool = call("get", "/v1/pool", 200, alpha).get_json()
    assert pool["workers"][0]["jobs"], (placed, pool)

    # The registry, downloads and predictions.
    publish_version(platform, "alpha", "ner", ner_dir, metrics={"f1": 0.5})
    publish_version(platform, "alpha", "ner", ner_dir, metrics={"f1": 0.6})
    models = call("get", "/v1/models", 200, alpha).get_json()
    assert {m["kind"] for m in models["data"]} == {"fine-tuned", "base"}
    call("get", "/v1/models/{name}", 200, alpha, name="ner")
    call("get", "/v1/models/{name}", 200, alpha, name="ner:1")
    call("get", "/v1/models/{name}", 200, alpha, name=TINY_BASE_MODEL)
    call("get", "/v1/models/{name}", 404, alpha, name="nothing")
    call("get", "/v1/models/{model_id}", 404, alpha, model_id="org/nothing")
    call("get", "/v1/models/{name}/versions", 200, alpha, name="ner")
    call("get", "/v1/models/{name}/versions/{version}", 200, alpha, name="ner", version=1)
    call("get", "/v1/models/{name}/versions/{version}", 404, alpha, name="ner", version=9)
    alias = {"name": "ner", "alias": "production"}
    call("put", "/v1/models/{name}/aliases/{alias}", 200, alpha, **alias, json={"version": 1})
    call("put", "/v1/models/{name}/aliases/{alias}", 200, alpha, **alias, json={"version": 2})
    call("put", "/v1/models/{name}/aliases/{alias}", 422, alpha, **alias, json={"version": 0})
    call("post", "/v1/models/{name}/aliases/{alias}/rollback", 200, alpha, **alias, json={})
    call("get", "/v1/models/{name}/aliases/{alias}/history", 200, alpha, **alias)
    tar = call("get", "/v1/models/{ref}/download", 200, alpha, ref="ner@production")
    assert tar.mimetype == "application/x-tar"
    predict = {"json": {"inputs": ["Ola lives in Oslo", ["Ola", "Nordmann"]]}}
    call("post", "/v1/models/{ref}/predict", 200, alpha, ref="ner:1", **predict)
    call("post", "/v1/models/{ref}/predict", 422, alpha, ref="ner:1", json={"inputs": []})
    call("post", "/v1/models/{ref}/predict", 404, alpha, ref="nothing", **predict)

    # Teams and keys: the operators' admin creates a team, changes it, issues a key
    # (replayed: the key is shown once) and revokes it.
    call("get", "/v1/teams/me", 200, alpha)
    call("get", "/v1/usage", 200, alpha)
    call("get", "/v1/teams", 200, alpha)
    call("get", "/v1/teams", 403, viewer)
    call("post", "/v1/teams", 403, alpha, json={"name": "gamma"})
    with transaction(platform.sessions) as session:
        _, key = create_team(session, "operators", role="admin", operator=True)
    ops = {"Authorization": f"Bearer {key}"}
    team = call("post", "/v1/teams", 201, ops, json={"name": "gamma", "max_gpus": 2})
    ident = team.get_json()["team"]["id"]
    call("post", "/v1/teams", 422, ops, json={"name": ""})
    call("patch", "/v1/teams/{ident}", 200, ops, ident=ident, json={"weight": 2.0})
    call("patch", "/v1/teams/{ident}", 404, alpha, ident="team_missing", json={})
    once = {**ops, "Idempotency-Key": "k-1"}
    issued = call("post", "/v1/teams/{ident}/keys", 201, once, ident=ident, json={})
    replayed = call("post", "/v1/teams/{ident}/keys", 201, once, ident=ident, json={})
    assert issued.get_json()["key"] and replayed.get_json()["key"] is None
    keys = call("get", "/v1/teams/{ident}/keys", 200, ops, ident=ident).get_json()["data"]
    call("post", "/v1/keys/{key_id}/revoke", 200, ops, key_id=keys[-1]["id"])
    call("post", "/v1/keys/{key_id}/revoke", 404, alpha, key_id="key_missing")

    # Alerts: one incident of the team.
    with transaction(platform.sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == "alpha"))
        now = time.time()
        session.add(
            Incident(rule="job_failed", subject="job_x", team_id=team_id, severity="warning",
                     state="open", summary="a job failed", details={"job": "job_x"},
                     opened_at=now, last_seen_at=now)
        )  # fmt: skip
    alerts = call("get", "/v1/alerts", 200, alpha).get_json()
    assert alerts["data"], alerts
    call("get", "/v1/alerts", 422, alpha, query_string={"state": "maybe"})

    # Schedules: create, read, change, fire once, runs, delete.
    body = {
        "model_name": "ner",
        "dataset_name": "ner",
        "cron": "0 3 * * *",
        "base_model": TINY_BASE_MODEL,
        "evaluation_dataset": evaluation.get_json()["id"],
    }
    schedule = call("post", "/v1/schedules", 201, alpha, json=body).get_json()
    call("post", "/v1/schedules", 409, alpha, json=body)
    call("post", "/v1/schedules", 422, alpha, json={**body, "name": "n2", "cron": "nope"})
    sid = {"schedule_id": schedule["id"]}
    call("get", "/v1/schedules", 200, alpha)
    call("get", "/v1/schedules/{schedule_id}", 200, alpha, **sid)
    call("patch", "/v1/schedules/{schedule_id}", 200, alpha, **sid, json={"enabled": False})
    call("post", "/v1/schedules/{schedule_id}/run", 201, alpha, **sid)
    call("get", "/v1/schedules/{schedule_id}/runs", 200, alpha, **sid)
    call("delete", "/v1/schedules/{schedule_id}", 200, alpha, **sid)
    call("get", "/v1/schedules/{schedule_id}", 404, alpha, **sid)


def walk_openai_compatible_routes(call: DocumentedApi, make_key: KeyFactory) -> None:
    alpha = make_key("alpha")
    upload = conll("train")
    upload["data"]["purpose"] = "fine-tune"
    del upload["data"]["task"], upload["data"]["format"]
    file = call("post", "/v1/files", 200, alpha, **upload).get_json()
    call("get", "/v1/files", 200, alpha)
    call("get", "/v1/files/{file_id}", 200, alpha, file_id=file["id"])
    call("get", "/v1/files/{file_id}", 404, alpha, file_id="file-missing")
    create = {"model": TINY_BASE_MODEL, "training_file": file["id"], "suffix": "doc"}
    job = call("post", "/v1/fine_tuning/jobs", 200, alpha, json=create).get_json()
    bad = {**create, "hyperparameters": {"n_epochs": 0}}
    call("post", "/v1/fine_tuning/jobs", 422, alpha, json=bad)
    jid = {"job_id": job["id"]}
    call("get", "/v1/fine_tuning/jobs", 200, alpha)
    call("get", "/v1/fine_tuning/jobs/{job_id}", 200, alpha, **jid)
    call("get", "/v1/fine_tuning/jobs/{job_id}/events", 200, alpha, **jid)
    call("get", "/v1/fine_tuning/jobs/{job_id}/checkpoints", 200, alpha, **jid)
    call("post", "/v1/fine_tuning/jobs/{job_id}/cancel", 200, alpha, **jid)
    call("get", "/v1/fine_tuning/jobs/{job_id}", 404, alpha, job_id="job_missing")

    # Chat: whole answers, a stream, and errors in OpenAI's shape (also the 401, which
    # authentication raises before the view).
    messages = [{"role": "user", "content": "Hello"}]
    chat = {"model": TINY_CHAT_BASE, "messages": messages, "max_tokens": 4, "temperature": 0}
    call("post", "/v1/chat/completions", 200, alpha, json=chat)
    stream = call("post", "/v1/chat/completions", 200, alpha, json={**chat, "stream": True})
    assert stream.get_data(as_text=True).endswith("data: [DONE]\n\n")
    text = {"model": TINY_CHAT_BASE, "prompt": "Once upon", "max_tokens": 3}
    call("post", "/v1/completions", 200, alpha, json=text)
    refused = call("post", "/v1/chat/completions", 400, alpha, json={**chat, "n": 2})
    assert refused.get_json()["error"]["param"] == "n"
    call("post", "/v1/chat/completions", 404, alpha, json={**chat, "model": "nothing"})
    unauthenticated = call("post", "/v1/completions", 401, json=text).get_json()
    assert unauthenticated["error"]["type"] == "authentication_error"


def test_every_operation_answers_as_documented(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
) -> None:
    call = DocumentedApi(client)
    walk_public_routes(call)
    walk_native_routes(call, make_key, platform, ner_dir)
    walk_openai_compatible_routes(call, make_key)
    documented = {(m, p) for p, item in call.doc["paths"].items() for m in item}
    assert documented == call.called, sorted(documented - call.called)
