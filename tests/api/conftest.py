"""API fixtures: a real app on real SQL (SQLite and PostgreSQL), a file object store, real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from commands.redis_server import RedisServer
from storage.db import transaction
from storage.platform import Platform
from storage.schema import upgrade
from storage.teams import create_team, issue_key
from tunepool.settings import Settings
from tunepool.synthetic import conll_text


@pytest.fixture
def platform(
    database_url: str,
    tmp_path: Path,
    redis_server: RedisServer,
    tiny_base_models: dict[str, str],
    serving_objects: Path,
) -> Iterator[Platform]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        # Shared with the session's serving worker (tests/conftest.py: serving_worker).
        object_store_url=serving_objects.as_uri(),
        redis_url=redis_server.url,
        base_models=tiny_base_models,
    )
    platform = Platform(settings, for_api=True)  # as api.app.create_app builds its own
    upgrade(platform.engine)
    yield platform
    platform.close()


@pytest.fixture
def app(platform: Platform) -> Flask:
    return create_app(platform=platform)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


KeyFactory = Callable[..., dict[str, str]]


@pytest.fixture
def make_key(platform: Platform) -> KeyFactory:
    """Create (or reuse) a team and return Authorization headers for a key with the role."""

    def make(team: str = "alpha", role: str = "member") -> dict[str, str]:
        from sqlalchemy import select

        from storage.models import Team

        with transaction(platform.sessions) as session:
            existing = session.scalar(select(Team).where(Team.name == team))
            key = (
                issue_key(session, existing, role)
                if existing
                else create_team(session, team, role=role)[1]
            )
        return {"Authorization": f"Bearer {key}"}

    return make


def upload_ner(
    client: FlaskClient,
    headers: dict[str, str],
    text: str | None = None,
    name: str = "ner",
    fmt: str = "conll",
) -> dict:
    body = text if text is not None else conll_text(20, seed=3)
    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "task": "token-classification",
            "format": fmt,
            "name": name,
            "file": (__import__("io").BytesIO(body.encode()), f"{name}.{fmt}"),
        },
    )
    # "status" is the HTTP status here; the dataset's own status is read with a GET.
    return {**resp.get_json(), "status": resp.status_code}
