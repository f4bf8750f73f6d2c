"""Whether this process can serve: SQL, Redis and the object store each answer, in time.

``/healthz`` is liveness (the process answers; restart it if not). Readiness is what a
load balancer or an operator asks before sending work: a platform whose Redis is down
accepts a job but cannot publish it. Each dependency is asked at once from its own
thread and given ``timeout_s`` in all, so a dependency that hangs (an S3 endpoint
retrying, a database behind a dropped route) is reported as down instead of holding
the caller; the thread finishes on the client's own timeouts and is not waited for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from sqlalchemy import text

from storage.platform import Platform

log = logging.getLogger(__name__)

# The object store is asked for a key that never exists: a round trip, nothing read.
PROBE_KEY = "readiness-probe/none"


def check_readiness(platform: Platform, timeout_s: float = 2.0) -> dict[str, str]:
    """Per dependency: "ok", or why it is down (an exception's class name, or "timeout")."""
    checks: dict[str, Callable[[], object]] = {
        "database": lambda: _database(platform),
        "redis": lambda: _redis(platform.settings.redis_url, timeout_s),
        "object_store": lambda: platform.store.exists(PROBE_KEY),
    }
    # A fresh pool per call: nothing to carry across a fork, and a hung check holds only
    # its own thread.
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readiness")
    try:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        deadline = time.monotonic() + timeout_s
        answers = {}
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                answers[name] = "ok"
            except FutureTimeout:
                answers[name] = "timeout"
                log.warning("readiness: %s did not answer within %.1f s", name, timeout_s)
            except Exception as exc:
                # The class only: the message may name hosts and ports, and readiness
                # answers without a key. The log has the rest.
                answers[name] = type(exc).__name__
                log.warning("readiness: %s is down: %s", name, exc)
        return answers
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _database(platform: Platform) -> None:
    with platform.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _redis(url: str, timeout_s: float) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    finally:
        client.close()
