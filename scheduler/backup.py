"""Backups (DESIGN §8): the SQL database and a manifest of every object, with a tested restore.

A backup is a folder ``backups/<UTC time>/`` in the object store:

- the database: ``database.sqlite3`` (SQLite's online backup API, a consistent copy
  while the platform runs), ``database.pgdump`` (``pg_dump`` in custom format, run on
  a snapshot exported from our own REPEATABLE READ transaction), or ``database.json``
  (every table as JSON, read in one REPEATABLE READ transaction, when there is no
  ``pg_dump``);
- ``manifest.json``, written last so that a folder without it is no backup: the dump's
  size and SHA-256, the row count of every table, and every object the database
  records (key, size, SHA-256). The object list is read from the same snapshot as the
  dump, and each object is checked against the store while the backup is taken.

Objects are not copied: they are immutable once written and the store keeps them; the
manifest is what proves, at restore time, that every object the restored database
names is still there with the same bytes. Backup files are not recorded in the
``stored_objects`` table, since a restore must work from the store alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from storage.objects.base import ObjectNotFound, ObjectStore
from storage.schema import upgrade
from storage.tables import metadata
from tunepool.platform import Platform

log = logging.getLogger(__name__)

PREFIX = "backups/"
MANIFEST = "manifest.json"
STATUS_KEY = "backups/status.json"
_NAME_FORMAT = "%Y%m%dT%H%M%SZ"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore could not be done (or was refused: the target is not empty)."""


@dataclass
class Report:
    """The outcome of verifying a backup or a restore: empty ``problems`` means all good."""

    name: str
    objects: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def backup_name(at: datetime) -> str:
    return at.astimezone(UTC).strftime(_NAME_FORMAT)


def name_time(name: str) -> datetime:
    return datetime.strptime(name, _NAME_FORMAT).replace(tzinfo=UTC)


def _sha256_stream(stream: Any) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _check_object(store: ObjectStore, key: str, size: int, sha256: str) -> str | None:
    """None if the stored bytes match; otherwise what is wrong with them."""
    try:
        with store.open(key) as src:
            actual_size, actual = _sha256_stream(src)
    except ObjectNotFound:
        return f"{key}: missing from the object store"
    if actual_size != size or actual != sha256:
        return (
            f"{key}: checksum mismatch (expected {size} bytes sha256 {sha256}, "
            f"found {actual_size} bytes sha256 {actual})"
        )
    return None


# --- taking a backup -------------------------------------------------------------


def _sqlite_path(engine: Engine) -> Path:
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
    src = sqlite3.connect(_sqlite_path(engine), timeout=30)
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


def _pg_env_args(url: str) -> tuple[dict[str, str], list[str]]:
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


def _counts_and_objects(conn: Connection) -> tuple[dict[str, int], list[dict[str, Any]]]:
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
        counts, objects = _counts_and_objects(conn)
        # pg_dump reads the very snapshot our transaction sees, so dump and manifest agree.
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        env, args = _pg_env_args(engine.url.render_as_string(hide_password=False))
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


def _default_method(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return "sqlite"
    return "pg_dump" if shutil.which("pg_dump") else "logical"


def create_backup(
    engine: Engine, store: ObjectStore, *, now: datetime | None = None, method: str | None = None
) -> tuple[str, Report]:
    """Take a backup now; returns its name and the objects that failed their check (if any)."""
    method = method or _default_method(engine)
    name = backup_name(now or datetime.now(UTC))
    base = f"{PREFIX}{name}/"
    report = Report(name)
    with tempfile.TemporaryDirectory(prefix="tunepool-backup-") as tmp:
        workdir = Path(tmp)
        if method == "sqlite" and engine.dialect.name == "sqlite":
            dump, counts, objects = _dump_sqlite(engine, workdir)
        elif method == "pg_dump" and engine.dialect.name == "postgresql":
            dump, counts, objects = _pg_dump(engine, workdir)
        elif method == "logical" and engine.dialect.name == "postgresql":
            dump, counts, objects = _dump_logical(engine, workdir)
        else:
            raise BackupError(f"backup method {method!r} does not fit {engine.dialect.name}")
        with dump.open("rb") as f:
            dump_size, dump_sha = _sha256_stream(f)
        store.put_file(base + dump.name, dump)
    entries = sorted(
        ({"key": o["key"], "size": int(o["size"]), "sha256": o["sha256"]} for o in objects),
        key=lambda o: o["key"],
    )
    for entry in entries:
        problem = _check_object(store, entry["key"], entry["size"], entry["sha256"])
        if problem:
            report.problems.append(problem)
    report.objects = len(entries)
    manifest = {
        "name": name,
        "created_at": time.time(),
        "method": method,
        "dialect": engine.dialect.name,
        "database": {"key": base + dump.name, "size": dump_size, "sha256": dump_sha},
        "tables": counts,
        "objects": entries,
        "problems": report.problems,
    }
    body = json.dumps(manifest, indent=1).encode()
    store.put(base + MANIFEST, io.BytesIO(body), len(body))
    return name, report


def _dump_logical(
    engine: Engine, workdir: Path
) -> tuple[Path, dict[str, int], list[dict[str, Any]]]:
    dump = workdir / "database.json"
    with _snapshot(engine) as conn:
        counts, objects = _counts_and_objects(conn)
        tables = {
            t.name: [dict(r._mapping) for r in conn.execute(select(t))]
            for t in metadata.sorted_tables
            if t.name in counts
        }
    dump.write_text(json.dumps({"format": "tunepool-logical-1", "tables": tables}))
    return dump, counts, objects


# --- finding, verifying, pruning --------------------------------------------------


def list_backups(store: ObjectStore) -> list[str]:
    """Complete backups (those with a manifest), oldest first."""
    names = set()
    for info in store.list(PREFIX):
        parts = info.key[len(PREFIX) :].split("/")
        if len(parts) == 2 and parts[1] == MANIFEST:
            names.add(parts[0])
    return sorted(names)


def read_manifest(store: ObjectStore, name: str) -> dict[str, Any]:
    try:
        with store.open(f"{PREFIX}{name}/{MANIFEST}") as f:
            manifest: dict[str, Any] = json.loads(f.read())
    except ObjectNotFound:
        raise BackupError(f"no backup named {name!r}") from None
    return manifest


def verify_backup(store: ObjectStore, name: str | None = None) -> Report:
    """Check a backup (the newest by default) without restoring: dump and every object."""
    if name is None:
        names = list_backups(store)
        if not names:
            raise BackupError("there is no backup to verify")
        name = names[-1]
    manifest = read_manifest(store, name)
    report = Report(name, objects=len(manifest["objects"]))
    db = manifest["database"]
    if problem := _check_object(store, db["key"], db["size"], db["sha256"]):
        report.problems.append(f"database dump {problem}")
    for entry in manifest["objects"]:
        if problem := _check_object(store, entry["key"], entry["size"], entry["sha256"]):
            report.problems.append(problem)
    return report


def to_keep(names: Iterable[str], daily: int, weekly: int) -> set[str]:
    """Names kept by retention: the newest of each of the last ``daily`` days and
    ``weekly`` ISO weeks that have a backup, and always the newest backup."""
    ordered = sorted(names, reverse=True)
    keep: set[str] = set(ordered[:1])
    days: set[date] = set()
    weeks: set[tuple[int, int]] = set()
    for name in ordered:
        at = name_time(name)
        day, week = at.date(), tuple(at.isocalendar())[:2]
        if day not in days and len(days) < daily:
            days.add(day)
            keep.add(name)
        if week not in weeks and len(weeks) < weekly:
            weeks.add(week)  # type: ignore[arg-type]
            keep.add(name)
    return keep


def prune(store: ObjectStore, daily: int, weekly: int) -> list[str]:
    """Delete the backups that retention does not keep (incomplete ones older than a day too)."""
    complete = list_backups(store)
    keep = to_keep(complete, daily, weekly)
    folders = {
        info.key[len(PREFIX) :].split("/")[0]: info.modified_at
        for info in store.list(PREFIX)
        if "/" in info.key[len(PREFIX) :]
    }
    doomed = [n for n in complete if n not in keep]
    # A folder with no manifest is a backup that died half-way; give a running one a day.
    doomed += [n for n, at in folders.items() if n not in complete and at < time.time() - 86400]
    for name in sorted(doomed):
        for info in list(store.list(f"{PREFIX}{name}/")):
            store.delete(info.key)
    return sorted(doomed)


def write_status(store: ObjectStore, status: dict[str, Any]) -> None:
    """The last attempt's outcome, read by the backup alerts (missing, stale, failed)."""
    body = json.dumps({**status, "at": time.time()}).encode()
    store.put(STATUS_KEY, io.BytesIO(body), len(body))


def read_status(store: ObjectStore) -> dict[str, Any] | None:
    try:
        with store.open(STATUS_KEY) as f:
            status: dict[str, Any] = json.loads(f.read())
    except ObjectNotFound:
        return None
    return status


# --- restoring -------------------------------------------------------------------


def _tables_with_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
        return [n for n in names if conn.execute(text(f'SELECT 1 FROM "{n}" LIMIT 1')).first()]


def _fetch_verified(store: ObjectStore, entry: dict[str, Any], dest: Path) -> None:
    with store.open(entry["key"]) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    with dest.open("rb") as f:
        size, sha = _sha256_stream(f)
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
            target = _sqlite_path(engine)
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
            env, args = _pg_env_args(engine.url.render_as_string(hide_password=False))
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
        counts, _ = _counts_and_objects(conn)
    for table, expected in manifest["tables"].items():
        if counts.get(table) != expected:
            report.problems.append(f"table {table}: {counts.get(table)} rows, expected {expected}")
    for entry in manifest["objects"]:
        if problem := _check_object(store, entry["key"], entry["size"], entry["sha256"]):
            report.problems.append(problem)
    return report


def run_backup(platform: Platform) -> dict[str, Any]:
    """The scheduled backup: take one, apply retention, and record the outcome for alerts."""
    settings, store = platform.settings, platform.store
    try:
        name, report = create_backup(platform.engine, store)
        pruned = prune(store, settings.backup_keep_daily, settings.backup_keep_weekly)
    except Exception as exc:
        log.exception("backup failed")
        write_status(store, {"ok": False, "name": None, "problems": [], "error": str(exc)})
        raise
    status = {"ok": report.ok, "name": name, "problems": report.problems[:100], "error": None}
    write_status(store, status)
    if report.problems:
        log.error("backup %s: %d object(s) failed their check", name, len(report.problems))
    return {**status, "pruned": pruned}
