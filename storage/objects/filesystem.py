"""The embedded object store: a local folder, with atomic writes.

An object becomes visible only by ``os.replace`` of a fully written, fsynced temp
file in the same directory, so a reader (or a crash) never sees half an object.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.objects.base import ObjectInfo, ObjectNotFound, ObjectStoreError

# Temp files live next to their final name (os.replace is only atomic within one
# filesystem); this prefix lets list() skip them and keeps keys from colliding.
TEMP_PREFIX = ".tp-tmp-"
_CHUNK = 1024 * 1024


def validate_key(key: str) -> str:
    """Refuse keys that could escape a root or mean different things on different backends.

    Both backends apply the same rule so that a key valid on one is valid on the other.
    """
    if not key:
        raise ObjectStoreError("invalid object key: empty")
    if "\\" in key or "\x00" in key:
        raise ObjectStoreError(f"invalid object key {key!r}: backslash or NUL")
    if key.startswith("/"):
        raise ObjectStoreError(f"invalid object key {key!r}: absolute")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ObjectStoreError(f"invalid object key {key!r}: empty, '.' or '..' segment")
        if segment.startswith(TEMP_PREFIX):
            raise ObjectStoreError(f"invalid object key {key!r}: reserved temp-file name")
    return key


def validate_prefix(prefix: str) -> str:
    """A list prefix may be empty or end in '/', but must not escape either."""
    stripped = prefix.rstrip("/")
    if stripped:
        validate_key(stripped)
    return prefix


def write_atomically(src: BinaryIO, path: Path) -> None:
    """Copy a stream to ``path`` via a temp file beside it, so ``path`` is never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemStore:
    """Objects are files under ``root``; the key is the path relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(key=key, size=st.st_size, modified_at=st.st_mtime)

    def _make_temp(self, key: str, path: Path) -> tuple[int, str]:
        # A concurrent delete() may prune the directory between mkdir and mkstemp; retry once.
        for attempt in (1, 2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
            except FileNotFoundError:
                if attempt == 2:
                    raise ObjectStoreError(f"cannot write {key}: directory vanished") from None
            except OSError as exc:
                raise ObjectStoreError(f"cannot write {key}: {exc}") from exc
        raise AssertionError("unreachable")

    def put(self, key: str, stream: BinaryIO, length: int = -1) -> ObjectInfo:
        path = self._path(key)
        fd, tmp_name = self._make_temp(key, path)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                written = 0
                while chunk := stream.read(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                if length >= 0 and written != length:
                    raise ObjectStoreError(
                        f"cannot write {key}: expected {length} bytes, stream gave {written}"
                    )
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ObjectStoreError(f"cannot write {key}: {exc}") from exc
            raise
        return self._info(key, path)

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        with open(path, "rb") as f:
            return self.put(key, f, os.fstat(f.fileno()).st_size)

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key}: {exc}") from exc

    def get_file(self, key: str, path: Path) -> None:
        with self.open(key) as src:
            write_atomically(src, Path(path))

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return self._info(key, path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix, as on S3), by key."""
        validate_prefix(prefix)
        # Walk only the deepest directory that can contain matching keys.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*base_dir.split("/")) if base_dir else self.root
        found: list[ObjectInfo] = []
        for dirpath, _dirs, files in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix):
                    try:
                        found.append(self._info(key, Path(dirpath, name)))
                    except FileNotFoundError:
                        continue  # deleted while we walked
        found.sort(key=lambda info: info.key)
        return iter(found)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Prune now-empty directories so deleted prefixes do not pile up as folders.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        return None
