"""One timestamp format in the native API: RFC 3339 in UTC (``2026-12-07T01:02:03Z``).

Every moment any native route writes is found by walking its JSON (keys ending in
``_at``, ``at``, ``estimated_start``, ``fire_time``, ``period_start``), so a route that
slips back to unix seconds or another ISO flavour fails here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update

from storage.db import transaction
from storage.models import Job, Team
from storage.platform import Platform
from storage.states import record_event
from storage.workers import WorkerInfo, register
from tests.api.conftest import KeyFactory, upload_ner
from tests.api.models_helpers import publish_version

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MOMENT_KEYS = ("estimated_start", "fire_time", "last_fire_time", "period_start")


def moments(value: Any, path: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}"
            if (key == "at" or key.endswith("_at") or key in MOMENT_KEYS) and inner is not None:
                found.append((where, inner))
            else:
                found += moments(inner, where)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += moments(inner, f"{path}[{index}]")
    return found


def test_every_native_route_writes_moments_in_rfc3339_utc(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, tmp_path: Path
) -> None:
    headers = make_key("alpha", "admin")
    with transaction(platform.sessions) as session:
        register(session, WorkerInfo("w1", "host", "tunepool.worker.w1", 1))
    ds = upload_ner(client, headers)
    first = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": ds["id"]},
    ).get_json()
    waiting = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": ds["id"]},
    ).get_json()
    assert waiting["estimated_start"] is not None
    # What a runner writes: a progress report and log lines, each with its unix time.
    now = time.time()
    with transaction(platform.sessions) as session:
        session.execute(
            update(Job).where(Job.id == first["id"]).values(progress={"step": 1, "at": now})
        )
        record_event(session, first["id"], "log", data={"lines": [{"at": now, "level": "INFO"}]})
        team_id = session.scalar(select(Team.id).where(Team.name == "alpha"))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    publish_version(platform, "alpha", "ner", model_dir)
    client.put("/v1/models/ner/aliases/production", headers=headers, json={"version": 1})
    schedule = client.post(
        "/v1/schedules",
        headers=headers,
        json={
            "name": "nightly",
            "model_name": "ner",
            "dataset_name": "ner",
            "cron": "0 3 * * *",
            "evaluation_dataset": ds["id"],
        },
    )

    routes = [
        f"/v1/jobs/{first['id']}",
        f"/v1/jobs/{waiting['id']}",
        "/v1/jobs",
        f"/v1/jobs/{first['id']}/events",
        f"/v1/jobs/{first['id']}/logs",
        "/v1/datasets",
        f"/v1/datasets/{ds['id']}",
        "/v1/models",
        "/v1/models/ner",
        "/v1/models/ner/versions/1",
        "/v1/models/ner/aliases/production/history",
        "/v1/teams/me",
        f"/v1/teams/{team_id}/keys",
        "/v1/schedules",
        "/v1/alerts",
    ]
    assert schedule.status_code == 201, schedule.get_json()
    routes.append(f"/v1/schedules/{schedule.get_json()['id']}/runs")
    seen: dict[str, str] = {}
    for route in routes:
        resp = client.get(route, headers=headers)
        assert resp.status_code == 200, (route, resp.get_json())
        for where, value in moments(resp.get_json()):
            seen[f"{route}{where}"] = value
    bad = {where: value for where, value in seen.items() if not RFC3339_UTC.match(str(value))}
    assert not bad
    # Each kind of moment was really there to check.
    for expected in (
        ".created_at",
        ".estimated_start",
        ".progress.at",
        ".lines[0].at",
        ".period_start",
        ".next_fire_at",
    ):
        assert any(where.endswith(expected) for where in seen), (expected, sorted(seen))


def test_the_openai_compatible_routes_keep_unix_seconds(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)
    job = client.post(
        "/v1/fine_tuning/jobs",
        headers=headers,
        json={"model": "all-MiniLM-L6-v2", "training_file": ds["id"]},
    )
    assert job.status_code in (200, 201), job.get_json()
    body = job.get_json()
    assert isinstance(body["created_at"], int)
    listed = client.get("/v1/fine_tuning/jobs", headers=headers).get_json()
    assert all(isinstance(j["created_at"], int) for j in listed["data"])
