"""Deferred admission: asks coalesce into one pass per window; the wait board round-trips."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from commands.redis_server import RedisServer
from scheduler.admission_requests import request_admission
from scheduler.wait_board import BOARD_KEY, Place, post_board, read_board
from storage.platform import Platform
from tunepool.admission_ask import ASK_KEY, PACE_KEY, paced_window, record_pass
from tunepool.messages import ADMIT_TASK, CONTROL_QUEUE
from tunepool.settings import Settings


def _platform(tmp_path: Path, redis_url: str, window: float) -> Platform:
    return Platform(
        Settings(
            home=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            redis_url=redis_url,
            admission_coalesce_s=window,
        )
    )


def _admit_messages(client: redis.Redis) -> list[dict[str, object]]:
    raw: list[bytes] = client.lrange(CONTROL_QUEUE, 0, -1)  # type: ignore[assignment]
    return [json.loads(m)["headers"] for m in raw]


def _empty_redis(redis_server: RedisServer) -> redis.Redis:
    """A client of the session's Redis, flushed: no ask key and no message left over."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    return client


def test_a_burst_of_asks_sends_one_pass_due_at_the_end_of_the_window(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    client = _empty_redis(redis_server)
    # A window wide enough that a loaded machine still sends the whole burst within it.
    platform = _platform(tmp_path, redis_server.url, window=2.0)
    started = time.monotonic()
    for _ in range(20):
        request_admission(platform)
    assert time.monotonic() - started < 2.0, "the burst outlasted the window"
    messages = _admit_messages(client)
    assert len(messages) == 1
    assert messages[0]["task"] == ADMIT_TASK
    # Due when the window closes, so the pass sees every job committed within it.
    assert messages[0]["eta"] is not None
    time.sleep(max(0.0, started + 2.1 - time.monotonic()))
    assert not client.exists(ASK_KEY)
    request_admission(platform)
    assert len(_admit_messages(client)) == 2
    platform.close()


def test_asks_within_a_known_window_skip_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    client = _empty_redis(redis_server)
    platform = _platform(tmp_path, redis_server.url, window=1.0)
    request_admission(platform)
    # Without the key in Redis, only this process's memory of the window stops a second.
    client.delete(ASK_KEY)
    request_admission(platform)
    assert len(_admit_messages(client)) == 1
    time.sleep(1.05)  # the window has closed: the next commit needs a pass of its own
    request_admission(platform)
    assert len(_admit_messages(client)) == 2
    # Another process (another platform) learns the window's end from Redis: it sends
    # nothing, and its later asks within the window skip Redis too.
    other = _platform(tmp_path, redis_server.url, window=1.0)
    request_admission(other)
    assert len(_admit_messages(client)) == 2
    client.delete(ASK_KEY)
    request_admission(other)
    assert len(_admit_messages(client)) == 2
    # Once the window has closed, an ask finds no key and sends the next pass.
    time.sleep(1.05)
    request_admission(other)
    assert len(_admit_messages(client)) == 3
    platform.close()
    other.close()


def test_an_unreachable_redis_does_not_fail_the_ask(tmp_path: Path) -> None:
    # Port 1 refuses at once; the beat's tick admits the job later.
    platform = _platform(tmp_path, "redis://127.0.0.1:1/0", window=0.5)
    request_admission(platform)
    platform.close()


def test_the_board_is_replaced_whole_and_unknown_jobs_have_no_place(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.delete(BOARD_KEY)
    post_board(client, {"a": Place(1, 1700000000.0), "b": Place(2, None)})
    assert read_board(client, ["a", "b", "c"]) == {
        "a": Place(1, 1700000000.0),
        "b": Place(2, None),
    }
    # The next pass no longer has "a" waiting: it leaves the board with it.
    post_board(client, {"b": Place(1, None)})
    assert read_board(client, ["a", "b"]) == {"b": Place(1, None)}
    post_board(client, {})
    assert read_board(client, ["b"]) == {}
    assert read_board(client, []) == {}


def test_an_unreachable_board_reads_as_unknown_positions() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    post_board(client, {"a": Place(1, None)})
    assert read_board(client, ["a"]) == {}


def test_a_slow_pass_spaces_the_next_window_and_a_fast_one_keeps_the_configured(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    client = _empty_redis(redis_server)
    platform = _platform(tmp_path, redis_server.url, window=0.5)
    settings = platform.settings.model_copy(update={"admission_duty": 0.2})
    assert paced_window(settings, 0.01) == 0.5
    assert paced_window(settings, 1.0) == pytest.approx(4.0)
    # A pass over a deep queue took 1 s: the next asks share one pass due 4 s later, so
    # passes take at most a fifth of the time.
    record_pass(client, settings, 1.0)
    before = time.time()
    request_admission(platform)
    (message,) = _admit_messages(client)
    due = datetime.fromisoformat(str(message["eta"])).timestamp()
    assert 3.5 <= due - before <= 4.5
    assert 3000 < client.pttl(ASK_KEY) <= 4000
    # A quick pass brings the configured window back for the asks after it.
    client.delete(ASK_KEY, CONTROL_QUEUE)
    record_pass(client, settings, 0.005)
    other = _platform(tmp_path, redis_server.url, window=0.5)
    request_admission(other)
    assert 0 < client.pttl(ASK_KEY) <= 500
    platform.close()
    other.close()


def test_inline_passes_record_no_pace(tmp_path: Path, redis_server: RedisServer) -> None:
    client = _empty_redis(redis_server)
    record_pass(client, _platform(tmp_path, redis_server.url, window=0).settings, 5.0)
    assert not client.exists(PACE_KEY)
