"""The API's PostgreSQL bounds (storage.db.make_engine): a lock wait ends in an error, and
the server ends a transaction left idle, freeing what it locked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from storage.db import make_engine

pytestmark = pytest.mark.postgres

LOCK = text("SELECT pg_advisory_xact_lock(7400099)")


@pytest.fixture
def bounded(database_url_postgres: str) -> Iterator[Engine]:
    engine = make_engine(database_url_postgres, lock_timeout_s=0.3, idle_in_transaction_timeout_s=1)
    yield engine
    engine.dispose()


@pytest.fixture
def plain(database_url_postgres: str) -> Iterator[Engine]:
    engine = make_engine(database_url_postgres)
    yield engine
    engine.dispose()


def test_the_server_holds_the_bounds_from_connect(bounded: Engine, plain: Engine) -> None:
    with bounded.connect() as conn:
        assert conn.execute(text("SHOW lock_timeout")).scalar() == "300ms"
        assert conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar() == "1s"
    with plain.connect() as conn:
        assert conn.execute(text("SHOW lock_timeout")).scalar() == "0"


def test_a_lock_wait_ends_in_an_error(bounded: Engine, plain: Engine) -> None:
    with plain.connect() as holder, holder.begin():
        holder.execute(LOCK)
        started = time.monotonic()
        with bounded.connect() as waiter, pytest.raises(OperationalError, match="lock timeout"):
            waiter.execute(LOCK)
        assert time.monotonic() - started < 5


def test_an_idle_transaction_is_ended_and_its_lock_freed(bounded: Engine, plain: Engine) -> None:
    orphan = bounded.connect()
    orphan.begin()
    orphan.execute(LOCK)
    time.sleep(1.5)  # idle inside its transaction, as a client gone without a word
    with plain.connect() as other, other.begin():
        other.execute(text("SET LOCAL lock_timeout = '5s'"))
        other.execute(LOCK)  # free: the server ended the orphan's session
    with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
        orphan.execute(text("SELECT 1"))
    orphan.invalidate()
