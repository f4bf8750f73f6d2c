"""What is in the store: backup names, manifests, the status the alerts read, retention and
verification without a restore.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from storage.layout import (
    BACKUP_MANIFEST,
    BACKUP_STATUS_KEY,
    BACKUPS_PREFIX,
    backup_manifest_key,
    backup_name_of,
    backup_prefix,
)
from storage.objects.base import ObjectNotFound, ObjectStore

_NAME_FORMAT = "%Y%m%dT%H%M%SZ"

CHUNK = 1024 * 1024


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


def sha256_stream(stream: Any) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def check_object(store: ObjectStore, key: str, size: int, sha256: str) -> str | None:
    """None if the stored bytes match; otherwise what is wrong with them."""
    try:
        with store.open(key) as src:
            actual_size, actual = sha256_stream(src)
    except ObjectNotFound:
        return f"{key}: missing from the object store"
    if actual_size != size or actual != sha256:
        return (
            f"{key}: checksum mismatch (expected {size} bytes sha256 {sha256}, "
            f"found {actual_size} bytes sha256 {actual})"
        )
    return None


def list_backups(store: ObjectStore) -> list[str]:
    """Complete backups (those with a manifest), oldest first."""
    names = set()
    for info in store.list(BACKUPS_PREFIX):
        inside = backup_name_of(info.key)
        if inside is not None and inside[1] == BACKUP_MANIFEST:
            names.add(inside[0])
    return sorted(names)


def read_manifest(store: ObjectStore, name: str) -> dict[str, Any]:
    try:
        with store.open(backup_manifest_key(name)) as f:
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
    if problem := check_object(store, db["key"], db["size"], db["sha256"]):
        report.problems.append(f"database dump {problem}")
    for entry in manifest["objects"]:
        if problem := check_object(store, entry["key"], entry["size"], entry["sha256"]):
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
        inside[0]: info.modified_at
        for info in store.list(BACKUPS_PREFIX)
        if (inside := backup_name_of(info.key)) is not None
    }
    doomed = [n for n in complete if n not in keep]
    # A folder with no manifest is a backup that died half-way; give a running one a day.
    doomed += [n for n, at in folders.items() if n not in complete and at < time.time() - 86400]
    for name in sorted(doomed):
        for info in list(store.list(backup_prefix(name))):
            store.delete(info.key)
    return sorted(doomed)


def write_status(store: ObjectStore, status: dict[str, Any]) -> None:
    """The last attempt's outcome, read by the backup alerts (missing, stale, failed)."""
    body = json.dumps({**status, "at": time.time()}).encode()
    store.put(BACKUP_STATUS_KEY, io.BytesIO(body), len(body))


def read_status(store: ObjectStore) -> dict[str, Any] | None:
    try:
        with store.open(BACKUP_STATUS_KEY) as f:
            status: dict[str, Any] = json.loads(f.read())
    except ObjectNotFound:
        return None
    return status
