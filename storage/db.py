"""Engine and session factories; nothing connects at import time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    create_engine,
    event,
    func,
    text,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import finite_json


def make_engine(
    url: str,
    *,
    lock_timeout_s: float = 0,
    idle_in_transaction_timeout_s: float = 0,
    **kwargs: Any,
) -> Engine:
    """Create an engine with the settings each dialect needs for a job queue.

    SQLite: WAL so readers never block the writer, a busy timeout instead of
    "database is locked", and every transaction ``BEGIN IMMEDIATE`` so that a
    read-then-write (an admission pass, a claim) holds the write lock from its
    first statement; two processes can then never both see the same free slot.

    JSON columns are written as strict JSON (``storage.finite_json``): a NaN written
    as ``NaN`` made every JSON function over the table fail on SQLite.

    PostgreSQL, for a process whose transactions are all short (the API's, one per
    request; 0 leaves the server's default, no limit): ``lock_timeout_s`` ends a wait
    for a row lock with an error instead of holding the caller, and
    ``idle_in_transaction_timeout_s`` has the server end a session idle inside a
    transaction, so the rows it locked are free again. The second is what clears a
    half-open connection (the client gone, the server not told): its transaction,
    holding an Idempotency-Key's reservation, would otherwise block every retry with
    that key until TCP keepalive notices, hours later. Not for workers: they hold a
    transaction open while they download a dataset or a model.
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
    # SQLAlchemy's own liveness check: a connection a database restart left dead is
    # replaced on checkout instead of failing the request that drew it.
    kwargs.setdefault("pool_pre_ping", True)
    limits = {
        "lock_timeout": lock_timeout_s,
        "idle_in_transaction_session_timeout": idle_in_transaction_timeout_s,
    }
    options = " ".join(f"-c {name}={round(s * 1000)}" for name, s in limits.items() if s > 0)
    if options and url.startswith("postgresql"):
        # Set by the server at connect (libpq's "options"): no round trip per session.
        kwargs["connect_args"] = {"options": options, **kwargs.get("connect_args", {})}
    return create_engine(url, **kwargs)


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


def execute_core(
    session: Session, statement: Executable, params: dict[str, Any]
) -> CursorResult[Any]:
    """Run a table-level (Core) statement on the session's connection, in its transaction.

    ``Session.execute`` resolves a bind and looks for ORM plugins on every call, work
    that is for ORM statements; the rows written this way (events, audit, idempotency
    keys) are never held as objects, so they skip it and still commit or roll back with
    everything else the session writes.
    """
    return session.connection().execute(statement, params)


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
