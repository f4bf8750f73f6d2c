"""The object store interface that every backend implements.

Keys are ``/``-separated relative paths (``teams/<team>/datasets/<id>/train.conll``).
Streams are never read whole into memory: ``put`` consumes a binary stream in parts
and ``open`` returns a readable stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


class ObjectStoreError(Exception):
    """The store could not do what was asked (unreachable, refused, invalid key)."""


class ObjectNotFound(ObjectStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key}")
        self.key = key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified_at: float


@runtime_checkable
class ObjectStore(Protocol):
    url: str

    def put(self, key: str, stream: BinaryIO, length: int = -1) -> ObjectInfo:
        """Store the stream under key; visible only once complete (no partial objects)."""

    def put_file(self, key: str, path: Path) -> ObjectInfo: ...

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object; the caller closes it."""

    def get_file(self, key: str, path: Path) -> None: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        """A time-limited download URL, or None where the backend has none (filesystem)."""
