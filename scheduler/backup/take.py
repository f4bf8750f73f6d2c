"""Taking a backup: the dump, each object checked, the manifest written last; and the
scheduled run with retention and the status for alerts.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scheduler.backup.catalog import (
    Report,
    backup_name,
    check_object,
    prune,
    sha256_stream,
    write_status,
)
from scheduler.backup.dump import default_method, dump_database
from storage.layout import backup_manifest_key, backup_object_key
from storage.objects.base import ObjectStore
from storage.platform import Platform

log = logging.getLogger(__name__)


def create_backup(
    engine: Engine, store: ObjectStore, *, now: datetime | None = None, method: str | None = None
) -> tuple[str, Report]:
    """Take a backup now; returns its name and the objects that failed their check (if any)."""
    method = method or default_method(engine)
    name = backup_name(now or datetime.now(UTC))
    report = Report(name)
    with tempfile.TemporaryDirectory(prefix="tunepool-backup-") as tmp:
        workdir = Path(tmp)
        dump, counts, objects = dump_database(engine, workdir, method)
        with dump.open("rb") as f:
            dump_size, dump_sha = sha256_stream(f)
        store.put_file(backup_object_key(name, dump.name), dump)
    entries = sorted(
        ({"key": o["key"], "size": int(o["size"]), "sha256": o["sha256"]} for o in objects),
        key=lambda o: o["key"],
    )
    for entry in entries:
        problem = check_object(store, entry["key"], entry["size"], entry["sha256"])
        if problem:
            report.problems.append(problem)
    report.objects = len(entries)
    manifest = {
        "name": name,
        "created_at": time.time(),
        "method": method,
        "dialect": engine.dialect.name,
        "database": {
            "key": backup_object_key(name, dump.name),
            "size": dump_size,
            "sha256": dump_sha,
        },
        "tables": counts,
        "objects": entries,
        "problems": report.problems,
    }
    body = json.dumps(manifest, indent=1).encode()
    store.put(backup_manifest_key(name), io.BytesIO(body), len(body))
    return name, report


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
