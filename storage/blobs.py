"""Checksummed objects: every stored object's size and SHA-256 are recorded in SQL.

Uploads hash while they stream (nothing is read whole into memory); downloads land
in a temp file, are checked against the recorded row, and only then renamed into
place. The caller owns the transaction: these functions add and delete rows but
never commit.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import StoredObject
from storage.objects.base import ObjectNotFound, ObjectStore, ObjectStoreError
from storage.objects.filesystem import validate_key

_CHUNK = 1024 * 1024


class ChecksumMismatch(ObjectStoreError):
    """The bytes in the store are not the bytes recorded: corrupted, truncated or replaced."""

    def __init__(self, key: str, expected: str, actual: str) -> None:
        super().__init__(f"checksum mismatch for {key}: expected {expected}, got {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class HashingReader(io.RawIOBase):
    """Counts and hashes bytes as the store reads them.

    Seeking back to the start resets the digest, so a store that retries an upload
    by rewinding the stream still records the hash of what it finally stored.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._start = stream.tell() if _seekable(stream) else 0
        self.size = 0
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return _seekable(self._stream)

    def tell(self) -> int:
        return self.size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if offset != 0 or whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a hashing reader can only rewind to its start")
        self._stream.seek(self._start)
        self.size = 0
        self._digest = hashlib.sha256()
        return 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.size += len(data)
        self._digest.update(data)
        return data

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _dir_prefix(prefix: str) -> str:
    # Treat a prefix as a directory: "step-1" must not also match "step-10/...".
    return prefix.rstrip("/") + "/" if prefix.strip("/") else ""


def _rows_under(session: Session, prefix: str) -> list[StoredObject]:
    query = select(StoredObject).order_by(StoredObject.key)
    if prefix:
        query = query.where(StoredObject.key.startswith(prefix, autoescape=True))
    return list(session.scalars(query))


def _record(session: Session, key: str, size: int, sha256: str) -> StoredObject:
    row = session.get(StoredObject, key)
    if row is None:
        row = StoredObject(key=key, size=size, sha256=sha256)
        session.add(row)
    else:
        row.size, row.sha256, row.created_at = size, sha256, time.time()
    session.flush()
    return row


def store_stream(
    session: Session, store: ObjectStore, key: str, stream: BinaryIO, length: int = -1
) -> StoredObject:
    """Upload ``stream`` under ``key`` and record (upsert) its size and SHA-256."""
    size, sha256 = _put(store, key, stream, length)
    return _record(session, key, size, sha256)


def _put(store: ObjectStore, key: str, stream: BinaryIO, length: int = -1) -> tuple[int, str]:
    """Upload; the size and SHA-256 of what was sent."""
    reader = HashingReader(stream)
    info = store.put(key, reader, length)  # type: ignore[arg-type]
    if info.size != reader.size:
        raise ObjectStoreError(f"store reports {info.size} bytes for {key}, sent {reader.size}")
    return reader.size, reader.sha256


def _put_file(store: ObjectStore, key: str, path: Path) -> tuple[int, str]:
    with open(path, "rb") as f:
        return _put(store, key, f, os.fstat(f.fileno()).st_size)


def store_file(session: Session, store: ObjectStore, key: str, path: Path) -> StoredObject:
    return _record(session, key, *_put_file(store, key, path))


def _walk_files(local_dir: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirs, files in os.walk(local_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(dirpath, name)
            yield path.relative_to(local_dir).as_posix(), path


def store_dir(
    session: Session, store: ObjectStore, prefix: str, local_dir: Path
) -> list[StoredObject]:
    """Upload every file under ``local_dir`` as ``<prefix>/<relative path>``.

    Every upload comes first and the rows after, so that the caller's transaction starts
    only once the object store has everything. Recording each file as it went up began
    the transaction after the first file and held it through the rest, retries included:
    on SQLite that is the database's write lock, held through an object-store outage.
    """
    base = _dir_prefix(prefix)
    sent = [
        (base + rel, *_put_file(store, base + rel, path)) for rel, path in _walk_files(local_dir)
    ]
    return [_record(session, key, size, sha256) for key, size, sha256 in sent]


def fetch_file(session: Session, store: ObjectStore, key: str, dest: Path) -> StoredObject:
    """Download ``key`` to ``dest`` only if its size and SHA-256 match the recorded row.

    On any failure ``dest`` is left as it was (absent, or its previous content).
    """
    row = session.get(StoredObject, key)
    if row is None:
        raise ObjectNotFound(key)
    fetch_verified(store, Recorded(row.key, row.size, row.sha256), dest)
    return row


@dataclass(frozen=True)
class Recorded:
    """What SQL records of a stored object: enough to verify a download without SQL
    (a serving worker is handed these by the API and never reads the database)."""

    key: str
    size: int
    sha256: str


def recorded_under(session: Session, prefix: str) -> list[Recorded]:
    """The recorded objects of the directory ``prefix``, in key order."""
    return [Recorded(r.key, r.size, r.sha256) for r in _rows_under(session, _dir_prefix(prefix))]


def fetch_verified(store: ObjectStore, recorded: Recorded, dest: Path) -> None:
    """Download to ``dest`` only if the bytes match ``recorded``; else ``dest`` is untouched."""
    key = recorded.key
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, store.open(key) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size != recorded.size or digest.hexdigest() != recorded.sha256:
            # A size difference always shows as a digest difference too.
            raise ChecksumMismatch(key, recorded.sha256, digest.hexdigest())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def fetch_dir(
    session: Session, store: ObjectStore, prefix: str, dest_dir: Path
) -> list[StoredObject]:
    """Download and verify every recorded object under ``prefix`` into ``dest_dir``."""
    rows = _rows_under(session, _dir_prefix(prefix))
    fetch_recorded_dir(store, prefix, [Recorded(r.key, r.size, r.sha256) for r in rows], dest_dir)
    return rows


def fetch_recorded_dir(
    store: ObjectStore, prefix: str, objects: list[Recorded], dest_dir: Path
) -> None:
    """``fetch_dir`` from a list of recorded objects instead of the database."""
    base = _dir_prefix(prefix)
    for recorded in objects:
        if not recorded.key.startswith(base):
            raise ValueError(f"{recorded.key} is not under {base}")
        # Recorded keys passed validate_key when stored; check again before touching disk.
        rel = validate_key(recorded.key[len(base) :])
        fetch_verified(store, recorded, Path(dest_dir).joinpath(*rel.split("/")))


def delete_prefix(session: Session, store: ObjectStore, prefix: str) -> int:
    """Delete the objects and rows under the directory ``prefix``; returns objects deleted.

    Objects present in the store without a row (left by a crash between upload and
    commit) are deleted too.
    """
    base = _dir_prefix(prefix)
    if not base:
        raise ValueError("refusing to delete the whole object store (empty prefix)")
    keys = {info.key for info in store.list(base)}
    rows = _rows_under(session, base)
    keys.update(row.key for row in rows)
    for key in sorted(keys):
        store.delete(key)
    for row in rows:
        session.delete(row)
    session.flush()
    return len(keys)


def verify(session: Session, store: ObjectStore, key: str) -> bool:
    """Whether the stored bytes still match the row; a missing object is False.

    Raises ObjectNotFound when there is no row: there is nothing to verify against.
    """
    row = session.get(StoredObject, key)
    if row is None:
        raise ObjectNotFound(key)
    digest, size = hashlib.sha256(), 0
    try:
        with store.open(key) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except ObjectNotFound:
        return False
    return size == row.size and digest.hexdigest() == row.sha256
