"""A one-job child forked by Celery keeps its parent's settings and SQL engine, not its
connections (storage.platform)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from storage import platform as platforms
from storage.platform import Platform, current_platform
from tunepool.settings import Settings


def test_a_forked_child_reuses_the_engine_with_a_pool_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=f"sqlite:///{tmp_path / 'tunepool.sqlite3'}",
        object_store_url=(tmp_path / "objects").as_uri(),
    )
    parent = Platform(settings)
    monkeypatch.setitem(platforms._platforms, os.getpid(), parent)
    with parent.engine.connect() as conn:  # the parent's pool now holds a connection
        conn.execute(text("SELECT 1"))
    parent_pool = parent.engine.pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        verdict = b"?"
        try:
            child = current_platform()
            with child.sessions() as session:
                session.execute(text("SELECT 1"))
            checks = [
                child is not parent,
                child.settings is parent.settings,
                child.engine is parent.engine,
                child.engine.pool is not parent_pool,
            ]
            verdict = b"".join(b"1" if ok else b"0" for ok in checks)
        finally:
            os.write(write, verdict)
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    verdict = os.read(read, 16)
    os.close(read)
    assert status == 0
    # A new Platform, the same settings and engine (its compiled-statement cache), a new pool.
    assert verdict == b"1111"
    # The parent's pooled connection was left alone.
    assert parent.engine.pool is parent_pool
    with parent.engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
