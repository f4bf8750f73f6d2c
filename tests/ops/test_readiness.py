"""/readyz: 200 while SQL, Redis and the object store answer; 503 naming what is down."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from commands.embedded import Embedded
from commands.redis_server import RedisServer, start_redis
from storage.platform import Platform
from storage.schema import upgrade
from tunepool.settings import Settings


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """A Redis of this test's own, so that it can be stopped; box[0] is the current one."""
    box = [start_redis(tmp_path / "redis", persist=True)]
    yield box
    box[0].stop()


def make_platform(tmp_path: Path, database_url: str, redis_url: str) -> Platform:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        object_store_url=(tmp_path / "objects").as_uri(),
        redis_url=redis_url,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    return platform


@pytest.fixture
def platform(tmp_path: Path, database_url: str, own_redis: list[RedisServer]) -> Iterator[Platform]:
    platform = make_platform(tmp_path, database_url, own_redis[0].url)
    yield platform
    platform.close()


@pytest.fixture
def client(platform: Platform) -> FlaskClient:
    return create_app(platform=platform).test_client()


def test_ready_while_every_dependency_answers(client: FlaskClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "object_store": "ok"},
        "down": [],
        "serving_workers": [],  # reported, not required
    }


def test_stopped_redis_answers_503_naming_redis_while_healthz_stays_live(
    client: FlaskClient, own_redis: list[RedisServer]
) -> None:
    own_redis[0].stop()
    started = time.monotonic()
    answer = client.get("/readyz")
    assert time.monotonic() - started < 5
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["down"] == ["redis"]
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["object_store"] == "ok"
    assert body["checks"]["redis"] != "ok"
    # Liveness is about this process, which is fine: no restart loop over a dependency.
    assert client.get("/healthz").status_code == 200


def test_a_redis_that_accepts_but_never_answers_is_down_within_the_timeout(
    tmp_path: Path, database_url: str
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing ever replies
        port = silent.getsockname()[1]
        platform = make_platform(tmp_path, database_url, f"redis://127.0.0.1:{port}/0")
        try:
            started = time.monotonic()
            answer = create_app(platform=platform).test_client().get("/readyz")
            elapsed = time.monotonic() - started
        finally:
            platform.close()
    assert answer.status_code == 503 and answer.get_json()["down"] == ["redis"]
    assert elapsed < 5, f"/readyz took {elapsed:.1f} s"


def test_embedded_redis_killed_is_restarted_on_its_port_with_its_data(
    tmp_path: Path, platform: Platform, own_redis: list[RedisServer], client: FlaskClient
) -> None:
    """What `tunepool up` does each half second: a SIGKILLed Redis comes back, same URL."""
    server = own_redis[0]
    # Its data directory is <home>/redis, as in `tunepool up`.
    embedded = Embedded(platform.settings.model_copy(update={"home": tmp_path}), {}, "", "", server)
    embedded.supervise_redis()
    redis.Redis.from_url(server.url).set("kept", "yes")
    time.sleep(1.2)  # the append-only file is written within a second

    server.process.kill()
    server.process.wait()
    assert client.get("/readyz").get_json()["down"] == ["redis"]
    deadline = time.monotonic() + 20
    while "redis" not in embedded.supervise():
        assert time.monotonic() < deadline, "Redis was not restarted"
        time.sleep(0.1)
    assert embedded.redis is not None and embedded.redis is not server
    own_redis[0] = embedded.redis  # stopped by the fixture
    assert embedded.redis.url == server.url
    assert redis.Redis.from_url(server.url).get("kept") == b"yes"
    assert client.get("/readyz").status_code == 200
