"""Per-request handles: the platform, a SQL session, and the calling team's key."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from storage.models import ApiKey
from tunepool.platform import Platform


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
    if session is not None:
        session.close()


def caller() -> ApiKey:
    key: ApiKey = g.api_key
    return key


def team_id() -> str:
    return caller().team_id
