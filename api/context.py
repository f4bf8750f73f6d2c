"""Per-request handles: the platform, a SQL session, and the calling team's key."""

from __future__ import annotations

import logging

from flask import current_app, g
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from storage.models import ApiKey
from storage.platform import Platform

log = logging.getLogger(__name__)


def platform() -> Platform:
    value: Platform = current_app.extensions["tunepool"]
    return value


def db() -> Session:
    if "db" not in g:
        g.db = platform().sessions()
    session: Session = g.db
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
