"""Engine and session factories; nothing connects at import time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, create_engine, event, exc, func, text, true
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import finite_json


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the settings each dialect needs for a job queue.

    SQLite: WAL so readers never block the writer, a busy timeout instead of
    "database is locked", and every transaction ``BEGIN IMMEDIATE`` so that a
    read-then-write (an admission pass, a claim) holds the write lock from its
    first statement; two processes can then never both see the same free slot.

    JSON columns are written as strict JSON (``storage.finite_json``): a NaN written
    as ``NaN`` made every JSON function over the table fail on SQLite.
    """
    kwargs.setdefault("json_serializer", finite_json.dumps)
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])), exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control away from the driver so that BEGIN below is ours.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if "pool_pre_ping" in kwargs:  # the caller chose SQLAlchemy's own
        return create_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    ping_connections_idle_since(engine, PING_AFTER_IDLE_S)
    return engine


# A connection checked in this recently was alive a moment ago (its transaction had
# just ended): pinging it again costs a round trip on every API request for nothing.
PING_AFTER_IDLE_S = 2.0


def ping_connections_idle_since(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection on checkout only once it has sat idle for ``idle_s``.

    ``pool_pre_ping`` pings on every checkout: one round trip (about 0.3 ms of client
    CPU, and the server's) per request, a tenth of a job submission's. Idle connections
    are the ones a database restart leaves dead, and they are still pinged. A connection
    that the database drops within ``idle_s`` of its last use fails its first statement
    instead: that request answers 503 with Retry-After (api.errors), and SQLAlchemy then
    invalidates every pooled connection older than the failure, so one request per
    process sees it, not one per connection.
    """

    # A new connection is as alive as one just checked in. (``info`` is cleared when a
    # connection is invalidated, so a replaced one starts from its own connect.)
    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _alive(_dbapi_connection: Any, record: Any) -> None:
        record.info["alive_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("alive_at")
        if last is not None and time.monotonic() - last < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool discards this connection and checks out another (three tries).
            raise exc.DisconnectionError(f"ping failed: {error}") from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lock_scheduler(session: Session) -> None:
    """Serialise admission passes across processes for the rest of this transaction.

    On SQLite the transaction already holds the database write lock (BEGIN IMMEDIATE);
    on PostgreSQL a transaction-scoped advisory lock does the same for this one concern.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7400001)"))


def json_readable(session: Session, column: Any) -> ColumnElement[bool]:
    """Where the JSON ``column`` holds text that the database's JSON functions can read.

    SQLite keeps any text in a JSON column, and one malformed row (a ``NaN`` written
    before ``finite_json.dumps``) fails every JSON function over the table;
    PostgreSQL checks JSON on the way in, so there every row is readable.
    """
    if session.get_bind().dialect.name == "sqlite":
        return func.json_valid(column) == 1
    return true()
