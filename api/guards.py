"""Per-key rate limits (429) and the audit log of mutating calls, as request hooks.

The limit is a token bucket per API key in this process: ``rate_limit_per_s`` tokens a
second up to ``rate_limit_burst``; 0 turns it off. Under gunicorn each worker process
keeps its own buckets, so the effective limit is at most workers times the setting,
which is enough to stop one runaway client from starving the others.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, Response, g, request
from sqlalchemy.orm import Session

from api.after_writes import defer
from api.errors import ApiError
from storage.audit import record, row
from tunepool.settings import Settings

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str, now: float | None = None) -> float:
        """0 if the call may go ahead, else the seconds until a token is back."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def install(app: Flask) -> None:
    settings = platform_settings(app)
    buckets = (
        TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst)
        if settings.rate_limit_per_s > 0 and settings.rate_limit_burst > 0
        else None
    )

    @app.before_request
    def _rate_limit() -> None:
        key = g.get("api_key")
        if buckets is None or key is None:
            return
        wait = buckets.take(key.id)
        if wait:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests for this key; retry in {math.ceil(wait)}s",
                retry_after=math.ceil(wait),
            )

    @app.after_request
    def _audit(response: Response) -> Response:
        if response.status_code == 429:
            response.headers["Retry-After"] = str(response.get_json()["error"]["retry_after"])
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


def audit_values(response: Response) -> dict[str, Any]:
    """The audit row's values, for a view that writes it with its own statement; call
    :func:`audited` once that has committed, so the after-request hook skips it."""
    return row(**_who_what(response.status_code))


def audited(response: Response) -> None:
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
