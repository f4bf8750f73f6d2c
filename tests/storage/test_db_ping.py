"""A PostgreSQL connection that the server dropped is replaced on checkout, not failed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from storage.db import make_engine
from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.postgres


@pytest.fixture
def pinging(database_url_postgres: str) -> Iterator[Engine]:
    engine = make_engine(database_url_postgres, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # The backend is gone once it has left pg_stat_activity.
        for _ in range(100):
            gone = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
            if not gone:
                break
            time.sleep(0.02)
    admin.dispose()


def test_a_dropped_connection_is_replaced_on_checkout(pinging: Engine) -> None:
    first = _backend(pinging)
    _terminate(first)
    # SQLAlchemy's pool_pre_ping finds it dead; the pool connects again and the call
    # succeeds instead of answering the request with an error.
    assert _backend(pinging) != first
