"""Chat serving figures for /metrics: per team tokens, tokens/s and time to first token;
per serving worker queue depth and adapters resident.

Every API process records each answer it relayed into Redis (one pipeline), so the
scrape of any process sees all of them; what a worker holds and queues is read from
the adverts its heartbeat keeps fresh. Labels are per team (its name) and per worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select

from storage.models import Team
from storage.platform import Platform
from tunepool.redis_client import redis_client
from tunepool.serving_protocol import base_key, live_workers

PREFIX = "tunepool:chat:stats"
TTFT_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Tokens/s is taken over the last full minute and the part of the current one.
_MINUTE = 60


def _team(team_id: str) -> str:
    return f"{PREFIX}:team:{team_id}"


def _minute(team_id: str, minute: int) -> str:
    return f"{PREFIX}:minute:{team_id}:{minute}"


def record_answer(
    client: redis.Redis,
    team_id: str,
    prompt_tokens: int,
    completion_tokens: int,
    ttft_s: float | None,
) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.sadd(f"{PREFIX}:teams", team_id)
    key = _team(team_id)
    pipe.hincrby(key, "requests", 1)
    pipe.hincrby(key, "prompt_tokens", prompt_tokens)
    pipe.hincrby(key, "completion_tokens", completion_tokens)
    if ttft_s is not None:
        pipe.hincrbyfloat(key, "ttft_sum", ttft_s)
        pipe.hincrby(key, "ttft_count", 1)
        for bound in TTFT_BUCKETS:
            if ttft_s <= bound:
                pipe.hincrby(key, f"ttft_le_{bound}", 1)
    minute_key = _minute(team_id, int(now // _MINUTE))
    pipe.incrby(minute_key, completion_tokens)
    pipe.expire(minute_key, 3 * _MINUTE)
    pipe.execute()


class ChatCollector(Collector):
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.client = redis_client(platform.settings.redis_url)
        self.teams: dict[str, str] = {}

    def collect(self) -> Iterator[Metric]:
        with self.platform.sessions() as session:
            self.teams = dict(session.execute(select(Team.id, Team.name)).all())
        yield from self._per_team()
        yield from self._per_worker()

    def _per_team(self) -> Iterator[Metric]:
        tokens = CounterMetricFamily(
            "tunepool_chat_tokens",
            "Tokens of chat and completion answers relayed, by team and kind",
            labels=["team", "kind"],
        )
        requests = CounterMetricFamily(
            "tunepool_chat_requests", "Chat and completion answers relayed", labels=["team"]
        )
        rate = GaugeMetricFamily(
            "tunepool_chat_tokens_per_second",
            "Completion tokens per second over about the last minute",
            labels=["team"],
        )
        ttft = HistogramMetricFamily(
            "tunepool_chat_time_to_first_token_seconds",
            "From the request's arrival at the API to its first token",
            labels=["team"],
        )
        members: Any = self.client.smembers(f"{PREFIX}:teams")
        now = time.time()
        minute, into = int(now // _MINUTE), (now % _MINUTE) / _MINUTE
        for raw in sorted(members or []):
            team_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            name = self.teams.get(team_id, team_id)
            found: Any = self.client.hgetall(_team(team_id))
            stats = {k.decode(): float(v) for k, v in found.items()}
            tokens.add_metric([name, "prompt"], stats.get("prompt_tokens", 0.0))
            tokens.add_metric([name, "completion"], stats.get("completion_tokens", 0.0))
            requests.add_metric([name], stats.get("requests", 0.0))
            now_count, last_count = self.client.mget(
                [_minute(team_id, minute), _minute(team_id, minute - 1)]
            )
            # The sliding-window estimate: all of this minute, the unexpired part of the last.
            window = float(now_count or 0) + float(last_count or 0) * (1 - into)
            rate.add_metric([name], window / _MINUTE)
            buckets = [(str(float(b)), stats.get(f"ttft_le_{b}", 0.0)) for b in TTFT_BUCKETS]
            buckets.append(("+Inf", stats.get("ttft_count", 0.0)))
            ttft.add_metric([name], buckets, stats.get("ttft_sum", 0.0))
        yield from (tokens, requests, rate, ttft)

    def _per_worker(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "tunepool_serving_queue_depth",
            "Requests waiting or running at a serving worker",
            labels=["worker"],
        )
        adapters = GaugeMetricFamily(
            "tunepool_serving_adapters_resident",
            "LoRA adapters resident on a serving worker's base model",
            labels=["worker", "base_model"],
        )
        prefix = base_key("")
        for advert in live_workers(self.client):
            depth.add_metric([advert.name], advert.queue_depth)
            for key, held in advert.models.items():
                if key.startswith(prefix):
                    adapters.add_metric(
                        [advert.name, key.removeprefix(prefix)], held.get("adapters", 0)
                    )
        yield from (depth, adapters)
