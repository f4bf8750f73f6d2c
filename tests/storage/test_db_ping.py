"""PostgreSQL connections are pinged on checkout only after sitting idle."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import Engine

import storage.db
from storage.db import make_engine
from tests.conftest import POSTGRES_ADMIN_URL

pytestmark = pytest.mark.postgres
IDLE_S = 1.0


@pytest.fixture
def pinging(database_url_postgres: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_S", IDLE_S)
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


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(pinging: Engine) -> None:
    first = _backend(pinging)
    time.sleep(IDLE_S + 0.1)
    _terminate(first)
    # The ping on checkout finds it dead; the pool connects again and the call succeeds.
    assert _backend(pinging) != first


def test_a_recently_used_connection_is_not_pinged(pinging: Engine) -> None:
    first = _backend(pinging)
    _terminate(first)
    # No ping within the idle window: the dead connection fails its first statement
    # (the API answers that with 503), and the pool replaces it for the next call.
    with pytest.raises(exc.OperationalError):
        _backend(pinging)
    assert _backend(pinging) != first
    # Used again at once: the same live connection, still unpinged and working.
    second = _backend(pinging)
    assert _backend(pinging) == second
