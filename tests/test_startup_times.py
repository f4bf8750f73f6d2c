"""Each worker's measured start-up time, a moving average kept in Redis."""

from __future__ import annotations

import pytest
import redis

from commands.redis_server import RedisServer
from tunepool.startup_times import SMOOTHING, STARTUP_KEY, record_startup, startup_times


def test_samples_make_a_moving_average_per_worker(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.delete(STARTUP_KEY)
    try:
        assert record_startup(client, "wA", 20.0) == 20.0  # the first sample is the average
        assert record_startup(client, "wA", 40.0) == pytest.approx(20 + SMOOTHING * 20)
        record_startup(client, "wB", 12.5)
        assert record_startup(client, "wB", -1.0) is None  # a clock step, not a start
        assert record_startup(client, "wB", 10 * 3600.0) is None  # resumed long after
        assert startup_times(client) == pytest.approx({"wA": 26.0, "wB": 12.5})
    finally:
        client.delete(STARTUP_KEY)


def test_an_unreachable_redis_means_no_figures_not_an_error() -> None:
    gone = redis.Redis(port=1, socket_connect_timeout=0.5)
    assert startup_times(gone) == {}
    assert record_startup(gone, "wA", 20.0) is None
