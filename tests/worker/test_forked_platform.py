"""A one-job child forked by Celery keeps its parent's settings and SQL engine, not its
connections (storage.platform)."""

from __future__ import annotations

import os
import subprocess
import sys
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


# In a fresh interpreter (pytest's own plugins have built cffi's parser already): fork a
# child and report what it imports to set its parent-death signal as Celery's pool does.
_PDEATHSIG_PROBE = """
import os, signal, sys
import billiard.util
if sys.argv[1] == "preloaded":
    from worker.tasks import preload_pdeathsig
    preload_pdeathsig()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    before = set(sys.modules)
    billiard.util.set_pdeathsig(signal.SIGKILL)
    os.write(write, (",".join(sorted(set(sys.modules) - before)) or "none").encode())
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(read, 65536).decode())
"""


def _child_imports(parent: str, tmp_path: Path) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TUNEPOOL_HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", _PDEATHSIG_PROBE, parent],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_a_child_sets_its_parent_death_signal_without_importing_anything(tmp_path: Path) -> None:
    """Celery's pool initialiser sets each job process's parent-death signal; after the
    worker's preload that costs the child no imports (pycparser was 40 ms per job)."""
    pytest.importorskip("cffi")  # without cffi billiard declares nothing
    assert "pycparser" in _child_imports("bare", tmp_path).split(",")
    assert _child_imports("preloaded", tmp_path) == "none"
