"""Per-team limits on chat serving, shared by every API process through Redis.

- Concurrent requests: a sorted set per team of the requests running now, scored by
  their deadline. Taking a place and checking the count is one Lua script (no two API
  processes can both take the last place); a place is given back when the answer ends,
  and one an API process lost by dying expires at its request's deadline.
- Tokens per minute: the ``limits`` library's sliding-window counter (the one of the
  per-key request rates, api/guards.py), charged with each answer's prompt and
  completion tokens once they are known. A request starts while the window has room;
  the answer that crosses the limit is served, and the next ones wait (429).

Both refuse with 429 and a Retry-After.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import redis
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from api.errors import ApiError

PREFIX = "tunepool:chat"

# KEYS[1] the team's set; ARGV: now, this request's deadline, its id, the limit.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""


@dataclass(frozen=True)
class Place:
    team_id: str
    token: str


class ChatLimits:
    def __init__(
        self, client: redis.Redis, redis_url: str, concurrency: int, tokens_per_minute: int
    ) -> None:
        self.client, self.concurrency = client, concurrency
        self._take = client.register_script(_TAKE)
        self._tpm = RateLimitItemPerMinute(tokens_per_minute) if tokens_per_minute else None
        self._window = SlidingWindowCounterRateLimiter(
            RedisStorage(redis_url, key_prefix=f"{PREFIX}:tpm")
        )

    def enter(self, team_id: str, deadline: float) -> Place:
        """A place for one request of the team, or 429."""
        if self._tpm is not None:
            stats = self._window.get_window_stats(self._tpm, team_id)
            if stats.remaining <= 0:
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise _limited(
                    f"this team used its {self._tpm.amount} tokens per minute; retry in {wait}s",
                    wait,
                )
        place = Place(team_id, uuid.uuid4().hex)
        if self.concurrency and not self._take(
            keys=[_running(team_id)], args=[time.time(), deadline, place.token, self.concurrency]
        ):
            raise _limited(
                f"this team already has {self.concurrency} chat requests running; retry shortly",
                1,
            )
        return place

    def leave(self, place: Place) -> None:
        try:
            self.client.zrem(_running(place.team_id), place.token)
        except redis.RedisError:
            pass  # it expires at the request's deadline

    def charge(self, team_id: str, tokens: int) -> None:
        """Count an answer's tokens; the one that crosses the limit fills the window."""
        if self._tpm is None or tokens <= 0:
            return
        remaining = self._window.get_window_stats(self._tpm, team_id).remaining
        if remaining > 0:
            self._window.hit(self._tpm, team_id, cost=min(tokens, remaining))


def _running(team_id: str) -> str:
    return f"{PREFIX}:running:{team_id}"


def _limited(message: str, wait: int) -> ApiError:
    return ApiError(
        429, "rate_limit_exceeded", message, headers={"Retry-After": str(wait)}, retry_after=wait
    )
