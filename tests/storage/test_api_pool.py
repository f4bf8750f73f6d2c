"""The API's SQL pool holds a connection for each request in flight, so a busy process
does not open and close a database connection per request (storage.platform)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import event, text

from storage.platform import Platform
from tunepool.settings import Settings

pytestmark = pytest.mark.postgres

THREADS = 8  # compose's gunicorn --threads


def _request(platform: Platform, barrier: threading.Barrier) -> None:
    with platform.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        barrier.wait(timeout=10)


def _concurrent_requests(platform: Platform, rounds: int) -> None:
    """``THREADS`` requests at once, each holding a connection until all have one."""
    for _ in range(rounds):
        barrier = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=_request, args=(platform, barrier)) for _ in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _connects(database_url_postgres: str, tmp_path: Path, **settings: int) -> int:
    platform = Platform(
        Settings.model_validate(
            {"home": tmp_path, "database_url": database_url_postgres, **settings}
        ),
        for_api=True,
    )
    opened: list[object] = []
    event.listen(platform.engine, "connect", lambda conn, _record: opened.append(conn))
    try:
        _concurrent_requests(platform, rounds=5)
    finally:
        platform.close()
    return len(opened)


def test_a_busy_api_process_keeps_its_connections(
    database_url_postgres: str, tmp_path: Path
) -> None:
    # The default holds one per thread: the first round opens them, the rest reuse them.
    assert _connects(database_url_postgres, tmp_path) == THREADS


def test_a_pool_smaller_than_the_threads_reconnects_every_round(
    database_url_postgres: str, tmp_path: Path
) -> None:
    # What SQLAlchemy's default of 5 did under 8 threads: the 3 overflow connections
    # are closed when they come back and opened again by the next round.
    assert _connects(database_url_postgres, tmp_path, api_sql_pool_size=5) == 5 + 3 * 5
