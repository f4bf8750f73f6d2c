"""Measurements that happen in many processes but are scraped from one: the API's /metrics.

SQL is the record of jobs, so most metrics are computed from it at scrape time. Two
things are not in SQL: how long an admission pass takes (it runs in the API, the
workers and the control worker) and what a worker's GPUs are doing right now (only
its own host can read them). Both go to Redis, which every process already reaches.
They are measurements, not records: losing them with Redis resets a histogram, which
Prometheus handles like a process restart, and GPU samples expire on their own.

Recording never raises: a metric must not break the admission pass or a heartbeat.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tunepool.redis_client import redis_client as _client

log = logging.getLogger(__name__)

ADMISSION_KEY = "tunepool:metrics:admission_pass_seconds"
GPU_KEY_PREFIX = "tunepool:metrics:gpus:"
# Upper bounds (seconds) of the admission histogram's buckets; +Inf is implied.
ADMISSION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def observe_admission_pass(redis_url: str, seconds: float) -> None:
    """Add one pass to the shared histogram (cumulative buckets, like Prometheus keeps them)."""
    try:
        pipe = _client(redis_url).pipeline(transaction=False)
        for bound in ADMISSION_BUCKETS:
            if seconds <= bound:
                pipe.hincrby(ADMISSION_KEY, f"le:{bound}", 1)
        pipe.hincrby(ADMISSION_KEY, "count", 1)
        pipe.hincrbyfloat(ADMISSION_KEY, "sum", seconds)
        pipe.execute()
    except Exception as exc:
        log.debug("admission pass duration not recorded: %s", exc)


def admission_pass_histogram(redis_url: str) -> tuple[list[tuple[str, float]], float] | None:
    """Cumulative buckets (``le`` label, count) ending in +Inf, and the sum; None if unreadable."""
    try:
        raw: dict[bytes, bytes] = _client(redis_url).hgetall(ADMISSION_KEY)  # type: ignore[assignment]
    except Exception as exc:
        log.debug("admission histogram unreadable: %s", exc)
        return None
    values = {k.decode(): float(v) for k, v in raw.items()}
    buckets = [(str(b), values.get(f"le:{b}", 0.0)) for b in ADMISSION_BUCKETS]
    buckets.append(("+Inf", values.get("count", 0.0)))
    return buckets, values.get("sum", 0.0)


def publish_gpu_samples(
    redis_url: str, worker: str, samples: list[dict[str, Any]], ttl_s: float
) -> None:
    """A worker's newest GPU readings; they vanish after ``ttl_s`` if the worker goes quiet."""
    if not samples:
        return
    try:
        _client(redis_url).set(
            GPU_KEY_PREFIX + worker, json.dumps(samples), px=max(1000, int(ttl_s * 1000))
        )
    except Exception as exc:
        log.debug("GPU samples of %s not published: %s", worker, exc)


def gpu_samples(redis_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every worker's newest GPU readings, by worker name."""
    try:
        client = _client(redis_url)
        keys = sorted(client.scan_iter(match=GPU_KEY_PREFIX + "*", count=500))
        values = client.mget(keys) if keys else []
    except Exception as exc:
        log.debug("GPU samples unreadable: %s", exc)
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            out[key.decode()[len(GPU_KEY_PREFIX) :]] = json.loads(value)
    return out
