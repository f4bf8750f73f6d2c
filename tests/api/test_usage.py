"""Disk use per team: /v1/usage and /teams/me count its own objects, /metrics every team."""

from __future__ import annotations

import io

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from storage.blobs import store_stream
from storage.db import transaction
from storage.models import Dataset, StoredObject
from storage.platform import Platform
from tests.api.conftest import KeyFactory, upload_ner
from tunepool.synthetic import conll_text


def dataset_bytes(platform: Platform, team_id: str) -> int:
    with platform.sessions() as session:
        return int(
            session.scalar(select(func.sum(Dataset.size)).where(Dataset.team_id == team_id)) or 0
        )


def test_each_team_sees_the_bytes_it_stores_and_metrics_show_every_team(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    upload_ner(client, alpha, conll_text(40, seed=1))
    upload_ner(client, alpha, conll_text(10, seed=2), name="small")
    upload_ner(client, beta, conll_text(5, seed=3))
    alpha_id = client.get("/v1/teams/me", headers=alpha).get_json()["id"]
    beta_id = client.get("/v1/teams/me", headers=beta).get_json()["id"]
    # A checkpoint of alpha's counts under jobs; the operators' backups count for no team.
    with transaction(platform.sessions) as session:
        store_stream(
            session,
            platform.store,
            f"teams/{alpha_id}/jobs/job_x/checkpoints/step-00000001/model.safetensors",
            io.BytesIO(b"w" * 1000),
        )
        store_stream(session, platform.store, "backups/2026/db.sql", io.BytesIO(b"b" * 500))

    usage = client.get("/v1/usage", headers=alpha)
    assert usage.status_code == 200
    stored = usage.get_json()["stored_bytes"]
    assert stored["datasets"] == dataset_bytes(platform, alpha_id) > 0
    assert stored["jobs"] == 1000 and stored["models"] == 0
    assert stored["total"] == stored["datasets"] + 1000
    assert client.get("/v1/teams/me", headers=alpha).get_json()["usage"]["stored_bytes"] == stored
    beta_stored = client.get("/v1/usage", headers=beta).get_json()["stored_bytes"]
    assert beta_stored == {
        "total": dataset_bytes(platform, beta_id),
        "datasets": dataset_bytes(platform, beta_id),
        "models": 0,
        "jobs": 0,
    }
    with platform.sessions() as session:
        everything = session.scalar(select(func.sum(StoredObject.size)))
    assert everything == stored["total"] + beta_stored["total"] + 500

    assert client.get("/v1/usage").status_code == 401
    text = client.get("/metrics").get_data(as_text=True)
    gauge = {
        (s.labels["team"], s.labels["kind"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "tunepool_team_stored_bytes"
    }
    assert gauge[("alpha", "datasets")] == stored["datasets"]
    assert gauge[("alpha", "jobs")] == 1000
    assert gauge[("beta", "datasets")] == beta_stored["datasets"]
    assert ("beta", "jobs") in gauge and gauge[("beta", "jobs")] == 0
