"""Per-key rate limits (429) and the audit log of mutating calls, as request hooks.

Rate limits are Flask-Limiter's, kept in Redis so that every API process and replica
counts against the same limit. A key may send ``rate_limit_burst`` requests within
``rate_limit_burst / rate_limit_per_s`` seconds (a sliding window): a burst of that
size, and ``rate_limit_per_s`` a second sustained; 0 turns limits off.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, Response, g, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from sqlalchemy.orm import Session

from api.after_writes import defer
from api.errors import ApiError
from storage.audit import record
from tunepool.settings import Settings

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def per_key_limit(settings: Settings) -> str | None:
    """The limit in Flask-Limiter's notation, or None when limits are off."""
    if settings.rate_limit_per_s <= 0 or settings.rate_limit_burst <= 0:
        return None
    window_s = max(1, math.ceil(settings.rate_limit_burst / settings.rate_limit_per_s))
    return f"{settings.rate_limit_burst} per {window_s} seconds"


def _caller_key() -> str:
    key = g.get("api_key")
    return f"key:{key.id}" if key is not None else ""


def install(app: Flask) -> None:
    settings = platform_settings(app)
    limit = per_key_limit(settings)
    limiter = Limiter(
        _caller_key,
        app=app,
        default_limits=[limit] if limit else [],
        # Calls without a key are refused by authentication, or are public (health).
        default_limits_exempt_when=lambda: g.get("api_key") is None,
        storage_uri=settings.redis_url,
        storage_options={"socket_timeout": 2, "socket_connect_timeout": 2},
        strategy="sliding-window-counter",
        key_prefix="tunepool:ratelimit",
        # Redis down: serve without limits rather than fail every call (logged).
        swallow_errors=True,
        enabled=limit is not None,
    )

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(_exc: RateLimitExceeded) -> tuple[Response, int, dict[str, str]]:
        current = limiter.current_limit
        wait = max(1, math.ceil(current.reset_at - time.time())) if current else 1
        error = ApiError(
            429,
            "rate_limited",
            f"too many requests for this key; retry in {wait}s",
            retry_after=wait,
        )
        return jsonify(error.body()), 429, {"Retry-After": str(wait)}

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
