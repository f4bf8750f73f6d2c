"""The database as one file: SQLite's online backup, ``pg_dump`` on an exported snapshot,
or every table as JSON; each with the row counts and the objects it records.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from scheduler.backup.catalog import BackupError
from storage.tables import metadata


def sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("only a file-backed SQLite database can be backed up")
    return Path(database)


def _rows_from_sqlite(path: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
    finally:
        conn.close()


def _dump_sqlite(
    engine: Engine, workdir: Path
) -> tuple[Path, dict[str, int], list[dict[str, Any]]]:
    dump = workdir / "database.sqlite3"
    src = sqlite3.connect(sqlite_path(engine), timeout=30)
    dst = sqlite3.connect(dump)
    try:
        src.backup(dst)  # the online backup API: a consistent copy while writers run
    finally:
        dst.close()
        src.close()
    # Counts and objects from the copy itself, so they describe exactly what was saved.
    conn = sqlite3.connect(dump)
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        counts = {
            t.name: conn.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0]
            for t in metadata.sorted_tables
            if t.name in present
        }
    finally:
        conn.close()
    return dump, counts, _rows_from_sqlite(dump, "stored_objects")


def pg_env_args(url: str) -> tuple[dict[str, str], list[str]]:
    """libpq connection arguments; the password goes in the environment, never argv."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432)]
    if parsed.username:
        args += ["-U", parsed.username]
    args += ["-d", str(parsed.database)]
    return env, args


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One REPEATABLE READ, read-only transaction: every read sees the same instant."""
    with (
        engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn,
        conn.begin(),
    ):
        conn.execute(text("SET TRANSACTION READ ONLY"))
        yield conn


def counts_and_objects(conn: Connection) -> tuple[dict[str, int], list[dict[str, Any]]]:
    present = set(inspect(conn).get_table_names())
    counts = {
        t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
        for t in metadata.sorted_tables
        if t.name in present
    }
    objects_table = metadata.tables["stored_objects"]
    objects = [dict(r._mapping) for r in conn.execute(select(objects_table))]
    return counts, objects


def _pg_dump(engine: Engine, workdir: Path) -> tuple[Path, dict[str, int], list[dict[str, Any]]]:
    dump = workdir / "database.pgdump"
    with _snapshot(engine) as conn:
        counts, objects = counts_and_objects(conn)
        # pg_dump reads the very snapshot our transaction sees, so dump and manifest agree.
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        env, args = pg_env_args(engine.url.render_as_string(hide_password=False))
        result = subprocess.run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                f"--snapshot={snapshot}",
                f"--file={dump}",
                *args,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()[-2000:]}")
    return dump, counts, objects


def _dump_logical(
    engine: Engine, workdir: Path
) -> tuple[Path, dict[str, int], list[dict[str, Any]]]:
    dump = workdir / "database.json"
    with _snapshot(engine) as conn:
        counts, objects = counts_and_objects(conn)
        tables = {
            t.name: [dict(r._mapping) for r in conn.execute(select(t))]
            for t in metadata.sorted_tables
            if t.name in counts
        }
    dump.write_text(json.dumps({"format": "tunepool-logical-1", "tables": tables}))
    return dump, counts, objects


def default_method(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return "sqlite"
    return "pg_dump" if shutil.which("pg_dump") else "logical"


def dump_database(
    engine: Engine, workdir: Path, method: str
) -> tuple[Path, dict[str, int], list[dict[str, Any]]]:
    """The database dumped into ``workdir`` by ``method``, with its row counts and the
    objects it records (read from the same snapshot)."""
    if method == "sqlite" and engine.dialect.name == "sqlite":
        return _dump_sqlite(engine, workdir)
    if method == "pg_dump" and engine.dialect.name == "postgresql":
        return _pg_dump(engine, workdir)
    if method == "logical" and engine.dialect.name == "postgresql":
        return _dump_logical(engine, workdir)
    raise BackupError(f"backup method {method!r} does not fit {engine.dialect.name}")
