"""Per-team chat limits in real Redis (api/chat_limits.py): concurrent requests and
tokens per minute, shared by every API process, refused with 429 and Retry-After."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from api.chat_limits import ChatLimits
from api.errors import ApiError
from commands.redis_server import RedisServer


@pytest.fixture
def limits(redis_server: RedisServer) -> ChatLimits:
    client = redis.Redis.from_url(redis_server.url)
    return ChatLimits(client, redis_server.url, concurrency=2, tokens_per_minute=100)


def test_concurrent_requests_per_team_are_bounded_and_given_back(limits: ChatLimits) -> None:
    team, other = uuid.uuid4().hex, uuid.uuid4().hex
    deadline = time.time() + 60
    first, _second = limits.enter(team, deadline), limits.enter(team, deadline)
    with pytest.raises(ApiError) as refused:
        limits.enter(team, deadline)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    limits.enter(other, deadline)  # another team is not held up
    limits.leave(first)
    limits.enter(team, deadline)


def test_a_place_lost_by_a_dead_api_process_expires_at_its_deadline(limits: ChatLimits) -> None:
    team = uuid.uuid4().hex
    for _ in range(2):
        limits.enter(team, time.time() + 0.2)  # never left
    time.sleep(0.3)
    limits.enter(team, time.time() + 60)


def test_tokens_per_minute_refuse_the_requests_after_the_one_that_crossed(
    limits: ChatLimits,
) -> None:
    team = uuid.uuid4().hex
    limits.leave(limits.enter(team, time.time() + 60))
    limits.charge(team, 60)
    limits.leave(limits.enter(team, time.time() + 60))  # 40 left: it starts
    limits.charge(team, 500)  # served; the window is full now
    with pytest.raises(ApiError) as refused:
        limits.enter(team, time.time() + 60)
    assert refused.value.status == 429 and "tokens per minute" in refused.value.message
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
