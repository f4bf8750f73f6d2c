"""schemathesis against /openapi.json of a live app, with a valid key: every route, no 5xx,
and no response that breaks the schema it declares. Bounded to stay under a minute."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from storage.db import transaction
from storage.schema import upgrade
from storage.teams import create_team
from tunepool.platform import Platform
from tunepool.redis_server import RedisServer
from tunepool.settings import Settings

KEY: dict[str, str] = {}


@pytest.fixture
def fuzzed_app(tmp_path: Path, redis_server: RedisServer) -> Iterator[Flask]:
    settings_ = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'fuzz.sqlite3'}",
        object_store_url=(tmp_path / "objects").as_uri(),
        redis_url=redis_server.url,
    )
    platform = Platform(settings_)
    upgrade(platform.engine)
    with transaction(platform.sessions) as session:
        # An operators' admin reaches the most code; other teams' ids are test_security's.
        _, key = create_team(session, "fuzz", role="admin", operator=True)
    KEY["Authorization"] = f"Bearer {key}"
    yield create_app(platform=platform)
    platform.close()


def test_no_route_answers_5xx_or_breaks_its_schema(fuzzed_app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        # Valid requests and invalid ones (wrong types, missing fields, junk in paths).
        cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=cases)
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=KEY, checks=[not_a_server_error, response_schema_conformance]
            )

        try:
            fuzz()
        except Exception as exc:  # one line per broken operation, then fail once
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert operations >= 40, operations
    assert not failures, "\n\n".join(failures)
