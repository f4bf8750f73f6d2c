"""Restoring a backup into an empty database, every object it names checked first."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

from scheduler.backup.catalog import (
    CHUNK,
    BackupError,
    Report,
    check_object,
    read_manifest,
    sha256_stream,
)
from scheduler.backup.dump import counts_and_objects, pg_env_args, sqlite_path
from storage.objects.base import ObjectStore
from storage.schema import upgrade
from storage.tables import metadata


def _tables_with_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
        return [n for n in names if conn.execute(text(f'SELECT 1 FROM "{n}" LIMIT 1')).first()]


def _fetch_verified(store: ObjectStore, entry: dict[str, Any], dest: Path) -> None:
    with store.open(entry["key"]) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)
    with dest.open("rb") as f:
        size, sha = sha256_stream(f)
    if size != entry["size"] or sha != entry["sha256"]:
        raise BackupError(f"database dump {entry['key']} is corrupted (sha256 {sha})")


def _restore_logical(engine: Engine, dump: Path) -> None:
    data = json.loads(dump.read_text())
    upgrade(engine)  # the schema first, then the rows, parents before children
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            rows = data["tables"].get(table.name) or []
            if rows:
                conn.execute(table.insert(), rows)
        if engine.dialect.name == "postgresql":
            # Explicit ids were inserted: move each serial past them.
            for table in metadata.sorted_tables:
                for column in table.primary_key.columns:
                    if column.autoincrement is True or (
                        column.autoincrement == "auto" and column.type.python_type is int
                    ):
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                f"'{column.name}'), coalesce(max({column.name}), 0) + 1, false) "
                                f'FROM "{table.name}"'
                            )
                        )


def restore_backup(engine: Engine, store: ObjectStore, name: str) -> Report:
    """Restore backup ``name`` into an empty database, then verify every object it names."""
    manifest = read_manifest(store, name)
    if _tables_with_rows(engine):
        raise BackupError(
            "refusing to restore into a database that has data; restore into an empty one"
        )
    method = manifest["method"]
    with tempfile.TemporaryDirectory(prefix="tunepool-restore-") as tmp:
        dump = Path(tmp) / manifest["database"]["key"].rsplit("/", 1)[-1]
        _fetch_verified(store, manifest["database"], dump)
        if method == "sqlite":
            if engine.dialect.name != "sqlite":
                raise BackupError("a SQLite backup restores into SQLite only")
            target = sqlite_path(engine)
            engine.dispose()
            src, dst = sqlite3.connect(dump), sqlite3.connect(target, timeout=30)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
        elif method == "pg_dump":
            with engine.connect() as conn:
                if inspect(conn).get_table_names():
                    raise BackupError("pg_restore needs a database without tables")
            env, args = pg_env_args(engine.url.render_as_string(hide_password=False))
            result = subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--single-transaction",
                    "--exit-on-error",
                    *args,
                    str(dump),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if result.returncode != 0:
                raise BackupError(f"pg_restore failed: {result.stderr.strip()[-2000:]}")
        else:
            _restore_logical(engine, dump)
    report = Report(name, objects=len(manifest["objects"]))
    with engine.connect() as conn:
        counts, _ = counts_and_objects(conn)
    for table, expected in manifest["tables"].items():
        if counts.get(table) != expected:
            report.problems.append(f"table {table}: {counts.get(table)} rows, expected {expected}")
    for entry in manifest["objects"]:
        if problem := check_object(store, entry["key"], entry["size"], entry["sha256"]):
            report.problems.append(problem)
    return report
