"""api.warm: an API process builds what its first requests need before it takes any."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import event

from api.app import create_app
from api.warm import warm
from tests.api.conftest import KeyFactory
from tunepool.netutil import free_port
from tunepool.platform import Platform
from tunepool.settings import Settings


def test_warming_connects_so_that_the_first_request_does_not(
    app: Flask, platform: Platform, make_key: KeyFactory
) -> None:
    key = make_key()
    platform.engine.dispose()  # as a freshly started process: no connection yet
    connects: list[object] = []
    event.listen(platform.engine, "connect", lambda *_: connects.append(1))
    warm(app)
    assert connects == [1]  # made before any request
    assert app.test_client().get("/v1/jobs", headers=key).status_code == 200
    assert connects == [1]  # the first request took the warmed connection


def test_a_database_that_does_not_answer_does_not_stop_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on this port: the connect is refused at once.
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    platform = Platform(
        Settings(home=tmp_path, database_url=url, redis_url="redis://127.0.0.1:1/0")
    )
    app = create_app(platform=platform)
    with caplog.at_level(logging.WARNING, logger="api.warm"):
        warm(app)
    assert "did not answer while the API started (OperationalError)" in caplog.text
    platform.close()
