"""Serving transport fixtures: a Redis database of the tests' own on the session's server,
so the session's serving worker (database 0) never sees these tests' workers, and back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from commands.redis_server import RedisServer

# Database 0 is the session's (its serving worker advertises there).
TRANSPORT_DB = 7


@pytest.fixture
def transport_url(redis_server: RedisServer) -> Iterator[str]:
    url = redis_server.url.rsplit("/", 1)[0] + f"/{TRANSPORT_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
