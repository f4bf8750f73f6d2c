"""schemathesis against /openapi.json of a live app, with a valid key: every route, no 5xx,
and no response that breaks the schema it declares. Bounded to stay under a minute.

Its inputs include wrong types and junk (negative mode, typed query parameters), huge
integers, and the numbers JSON cannot hold (NaN, +-Infinity, 1e400) written into every
numeric field of every JSON body; every rule of the app is in the document it reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from commands.redis_server import RedisServer
from storage.db import transaction
from storage.platform import Platform
from storage.schema import upgrade
from storage.teams import create_team
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


def test_every_route_is_in_the_openapi_document(fuzzed_app: Flask) -> None:
    """What schemathesis reaches is the document: no rule of the app may be missing."""
    paths = fuzzed_app.test_client().get("/openapi.json").get_json()["paths"]
    missing = []
    for rule in fuzzed_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule
        for converter in ("<path:", "<int:"):
            path = path.replace(converter, "<")
        path = path.replace("<", "{").replace(">", "}")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {rule.rule}")
    assert not missing, missing


# Not JSON numbers, then integers no column holds: each replaces every number of a body.
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
HUGE = ["1" + "0" * 30, "-" + "9" * 40]
SENTINEL = "__number__"


def _with_numbers_replaced(body: Any) -> Any:
    """The body with each number (bools aside) replaced by SENTINEL; a dict without
    numbers gets one more key holding it."""

    def walk(value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return SENTINEL
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    replaced = walk(body)
    if isinstance(replaced, dict) and SENTINEL not in json.dumps(replaced):
        replaced["n"] = SENTINEL
    return replaced


def test_non_finite_and_huge_numbers_in_any_json_body_are_refused(fuzzed_app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed_app)
    client = fuzzed_app.test_client()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        body = operation.body
        if not any(b.media_type == "application/json" for b in body):
            continue
        operations += 1
        cases = operation.as_strategy(GenerationMode.POSITIVE)

        @given(case=cases, token=st.sampled_from(NOT_FINITE + HUGE))
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: schemathesis.Case, token: str) -> None:
            raw = json.dumps(_with_numbers_replaced(case.body)).replace(f'"{SENTINEL}"', token)
            resp = client.open(
                case.formatted_path,
                method=case.method,
                query_string=case.query or {},
                data=raw,
                headers={**KEY, "Content-Type": "application/json"},
            )
            assert resp.status_code < 500, (token, raw[:300], resp.get_data()[:300])
            if token in NOT_FINITE:
                # Never accepted: refused as JSON (400), or before the body is read (404).
                assert resp.status_code >= 400, (token, raw[:300], resp.get_data()[:300])

        try:
            fuzz()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert operations >= 10, operations
    assert not failures, "\n\n".join(failures)
