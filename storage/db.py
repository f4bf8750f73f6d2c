"""Engine and session factories; nothing connects at import time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    Insert,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    text,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.selectable import HasCTE

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


# Where a session keeps the writes held by held_writes (Session.info is the session's own).
_HELD = "tunepool.held_writes"

Write = tuple[Executable, dict[str, Any]]


def insert_named(table: Table, prefix: str) -> Insert:
    """An INSERT of ``table``'s columns but its autoincrement key, its parameters named
    ``<prefix>_<column>`` (:func:`named` makes such a row), and no RETURNING: built
    once, and held with other writes without their parameters meeting."""
    columns = [c for c in table.columns if c is not table.autoincrement_column]
    return insert(table).inline().values({c.name: bindparam(f"{prefix}_{c.name}") for c in columns})


def named(prefix: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row``'s values under the parameter names of :func:`insert_named`'s INSERT."""
    return {f"{prefix}_{column}": value for column, value in row.items()}


def write_core(session: Session, statement: Executable, params: dict[str, Any]) -> None:
    """A table-level write whose result nobody reads: run now on the session's connection
    (as :func:`execute_core`), or, inside :func:`held_writes`, sent with the block's other
    writes when the block ends."""
    held: list[Write] | None = session.info.get(_HELD)
    if held is None:
        execute_core(session, statement, params)
    else:
        held.append((statement, params))


@contextmanager
def held_writes(session: Session) -> Iterator[None]:
    """Hold the table-level writes made inside (:func:`write_core`) and send them when the
    block ends: on PostgreSQL as one statement (each but the last a data-modifying WITH of
    the last), elsewhere one after another, in order. The caller still commits.

    What costs a database write here is mostly the statement, not the row: each one is a
    round trip and a pass through SQLAlchemy and the driver on the client, and parse,
    plan and executor start-up on the server. A call that ends by writing several rows
    (a job's first event, the answer kept for its Idempotency-Key, its audit row) sends
    one statement instead of one per row.

    Statements held together are built once, with parameters named apart
    (:func:`insert_named`); the same statement twice in one block goes out statement by
    statement. PostgreSQL runs the writes of one statement on one snapshot, so writes
    held together must not depend on each other's rows (a job event's job is flushed
    before its event is held, as ``storage.states.record_event`` does), and nothing inside
    the block may read what they write. An exception out of the block drops them, as the
    rollback that follows it would.
    """
    if _HELD in session.info:
        raise RuntimeError("held_writes blocks do not nest")
    held: list[Write] = []
    session.info[_HELD] = held
    try:
        yield
    finally:
        del session.info[_HELD]
    if not held:
        return
    connection = session.connection()
    statements = tuple(statement for statement, _ in held)
    if connection.dialect.name != "postgresql" or len(set(statements)) < len(statements):
        for statement, params in held:
            connection.execute(statement, params)
        return
    merged: dict[str, Any] = {}
    for _, params in held:
        merged.update(params)
    if len(merged) != sum(len(params) for _, params in held):
        # One value would silently stand for two: name them apart (insert_named).
        raise ValueError("writes held together name a parameter alike")
    connection.execute(_as_one(statements), merged)


@lru_cache(maxsize=64)
def _as_one(statements: tuple[Executable, ...]) -> Executable:
    """Writes as one statement, each but the last a WITH of the last; built once for each
    sequence of statements, so SQLAlchemy compiles it once."""
    *first, last = statements
    if not first:
        return last
    ctes = [cast(HasCTE, s).cte(f"held_{n}") for n, s in enumerate(first)]
    return cast(Executable, cast(HasCTE, last).add_cte(*ctes))


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
