"""Per-request handles: the platform, a SQL session, and the calling team's key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from storage.models import ApiKey
from storage.platform import Platform

log = logging.getLogger(__name__)


def platform() -> Platform:
    value: Platform = current_app.extensions["tunepool"]
    return value


V = TypeVar("V", bound=Callable[..., Any])
_ONE_STATEMENT = "tunepool_one_statement"


def one_statement(view: V) -> V:
    """Mark a view whose writes are one statement that also holds its Idempotency-Key's
    row and answer (api.commit_answer.commit_new_job): on PostgreSQL its request runs
    without a transaction (no BEGIN or COMMIT round trips; each read sees committed rows,
    as under READ COMMITTED anyway), and the key is not reserved on arrival
    (api.idempotency)."""
    setattr(view, _ONE_STATEMENT, True)
    return view


def one_statement_here() -> bool:
    """Whether this request's view is marked :func:`one_statement`."""
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, _ONE_STATEMENT, False))


def db() -> Session:
    if "db" not in g:
        g.db = _request_session()
    session: Session = g.db
    return session


def _request_session() -> Session:
    session = platform().sessions()
    if one_statement_here() and session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return session


def close_db() -> None:
    """End the request's session now (as teardown would): on SQLite an open transaction
    holds the write lock, which a write on another connection would wait for."""
    session = g.pop("db", None)
    if session is None:
        return
    try:
        session.close()
    except DBAPIError as exc:
        # The connection broke under the request (the database went away mid-statement,
        # and psycopg refuses the ROLLBACK: "another command is already in progress").
        # The view's answer stands (a 503 for that); the connection goes, not back to
        # the pool.
        log.warning(
            "closing the request's session failed (%s); discarding its connection", exc.orig
        )
        session.invalidate()


def caller() -> ApiKey:
    key: ApiKey = g.api_key
    return key


def team_id() -> str:
    return caller().team_id
