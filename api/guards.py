"""Per-key rate limits (429) and the audit log of mutating calls, as request hooks.

Rate limits are the ``limits`` library's sliding-window counter, kept in Redis so that
every API process and replica counts against the same limit. A key may send
``rate_limit_burst`` requests to one route within ``rate_limit_burst / rate_limit_per_s``
seconds (a sliding window): a burst of that size, and ``rate_limit_per_s`` a second
sustained; 0 turns limits off.

Flask-Limiter did this before, with the same library, strategy and Redis keys. Its
per-request resolution of which limits apply (route, blueprint, exemptions, meta limits:
none of which the API uses) cost several times the Redis call itself, about a tenth of
a job submission's CPU; one limit for every keyed call needs none of it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, Response, g, request
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from sqlalchemy.orm import Session

from api.after_writes import defer
from api.errors import ApiError
from storage.audit import record
from tunepool.settings import Settings

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The Redis keys' prefix, as Flask-Limiter had it (key_prefix): the keys stay the same,
# "LIMITER/tunepool:ratelimit/key:<key id>/<endpoint>/<amount>/<window>/second".
KEY_PREFIX = "tunepool:ratelimit"


def per_key_limit(settings: Settings) -> str | None:
    """The limit in the ``limits`` notation, or None when limits are off."""
    if settings.rate_limit_per_s <= 0 or settings.rate_limit_burst <= 0:
        return None
    window_s = max(1, math.ceil(settings.rate_limit_burst / settings.rate_limit_per_s))
    return f"{settings.rate_limit_burst} per {window_s} seconds"


class KeyRateLimit:
    """One limit per API key and route (Flask's endpoint), counted in Redis."""

    def __init__(self, limit: str, redis_url: str) -> None:
        self.item: RateLimitItem = parse(limit)
        # Short timeouts: a Redis that hangs must not hold every call (see check).
        storage = RedisStorage(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.window = SlidingWindowCounterRateLimiter(storage)

    def check(self, key_id: str, endpoint: str) -> None:
        """Count one call of ``key_id`` to ``endpoint``; 429 with Retry-After when over."""
        identifiers = (KEY_PREFIX, f"key:{key_id}", endpoint)
        try:
            if self.window.hit(self.item, *identifiers):
                return
            reset_at = int(self.window.get_window_stats(self.item, *identifiers).reset_time + 1)
        except Exception:
            # Redis down: serve without limits rather than fail every call (logged).
            log.exception("could not count the call against its rate limit; serving it")
            return
        wait = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for this key; retry in {wait}s",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )


def install(app: Flask) -> None:
    settings = platform_settings(app)
    limit = per_key_limit(settings)
    if limit is not None:
        limiter = KeyRateLimit(limit, settings.redis_url)

        @app.before_request
        def _rate_limit() -> None:
            # Calls without a key are refused by authentication, or are public (health);
            # a path no route serves (no endpoint) is a 404 whatever its rate.
            key = g.get("api_key")
            if key is not None and request.endpoint:
                limiter.check(key.id, request.endpoint)

    @app.after_request
    def _audit(response: Response) -> Response:
        if request.method not in MUTATING or not request.path.startswith("/v1/"):
            return response
        if g.pop("audited_status", None) == response.status_code:
            return response  # written with the call's own commit (audit_before_commit)
        # A lost audit row must not turn the call, which already happened, into an error:
        # after_writes logs a failure instead of raising it.
        defer(
            _audit_row(response.status_code),
            f"the audit event for {request.method} {request.path}",
        )
        return response


def audit_before_commit(session: Session, response: Response) -> None:
    """Write this call's audit row into the transaction about to commit what the call did:
    a crash after the commit cannot lose the row, and it needs no transaction of its own."""
    record(session, **_who_what(response.status_code))
    g.audited_status = response.status_code


def _audit_row(status: int) -> Callable[[Session], None]:
    return partial(record, **_who_what(status))


def _who_what(status: int) -> dict[str, Any]:
    key = g.get("api_key")
    return {
        "team_id": key.team_id if key else None,
        "key_id": key.id if key else None,
        "role": key.role if key else None,
        "method": request.method,
        "path": request.path,
        "endpoint": request.endpoint,
        "status": status,
        "remote_addr": request.remote_addr,
    }


def platform_settings(app: Flask) -> Settings:
    settings: Settings = app.extensions["tunepool"].settings
    return settings
