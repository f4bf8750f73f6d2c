"""Bearer-key authentication and roles (admin > member > viewer)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from api.context import caller, db
from api.errors import ApiError
from storage.teams import authenticate

RANK = {"viewer": 0, "member": 1, "admin": 2}
F = TypeVar("F", bound=Callable[..., Any])


def load_caller() -> None:
    """Runs before every /v1 request: 401 unless a live key is presented."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "unauthenticated", "send 'Authorization: Bearer <team API key>'")
    session = db()
    found = authenticate(session, presented.strip())
    if found is None:
        raise ApiError(401, "unauthenticated", "the API key is unknown or revoked")
    key, team = found
    # The key is read after the view too (audit row, Idempotency-Key hooks), also when the
    # view's flush failed: in the session a rollback would expire it, and reading it would
    # then open a new transaction on the request's session (or fail on a dead connection).
    # Detached, it keeps the values authentication loaded.
    session.expunge(key)
    # Holding the team keeps it in the request session's (weak) identity map.
    g.api_key, g.team = key, team


def requires(role: str) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if RANK[caller().role] < RANK[role]:
                raise ApiError(
                    403, "forbidden", f"this needs the {role} role; the key has {caller().role}"
                )
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
