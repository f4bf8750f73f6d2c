"""A serving worker's adapter files on local disk, bounded in bytes.

A request for a fine-tuned chat model brings its adapter's recorded files (the API
reads them from SQL; the serving worker never does). They are fetched verified on the
first request and kept, because the engine's keeper (``worker.inference.generation.
adapters``) reads them again whenever it re-loads an adapter it evicted from memory.
Without a bound, every adapter a worker ever served stayed on its disk.

Files go least recently used first once their total passes ``max_bytes``, but never
those of an adapter that a request in flight uses: between the fetch and the keeper's
load the files must be there. An adapter whose files went is fetched again by its next
request. Each fetch gets a directory of its own, so removing an old copy can never touch
a newer one of the same adapter.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from storage.blobs import ChecksumMismatch, Recorded, fetch_recorded_dir
from storage.objects.base import ObjectNotFound, ObjectStore
from tunepool.serving_protocol import Failure, Refused


@dataclass
class _Files:
    path: Path
    nbytes: int
    users: int = 0  # requests in flight that use them


class AdapterFiles:
    def __init__(self, store: ObjectStore, directory: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.store, self.directory, self.max_bytes = store, directory, max_bytes
        self._files: OrderedDict[str, _Files] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}
        self.fetches = self.removals = 0

    def locate(self, version_id: str) -> Path | None:
        """Where the adapter's files are, if they are on disk (the keeper's ``locate``)."""
        with self._lock:
            files = self._files.get(version_id)
        return None if files is None else files.path

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(f.nbytes for f in self._files.values())

    @contextmanager
    def using(self, version_id: str, prefix: str, objects: list[Recorded]) -> Iterator[Path]:
        """The adapter's files, fetched if they are not on disk, kept while within."""
        path = self._claim(version_id, prefix, objects)
        try:
            yield path
        finally:
            self._release(version_id)

    def _claim(self, version_id: str, prefix: str, objects: list[Recorded]) -> Path:
        with self._lock:
            if (path := self._use(version_id)) is not None:
                return path
            fetching = self._fetching.setdefault(version_id, threading.Lock())
        with fetching:  # one download per adapter; concurrent requests wait for it
            with self._lock:
                if (path := self._use(version_id)) is not None:
                    return path
            target = self.directory / f"{version_id}.{uuid.uuid4().hex[:12]}"
            try:
                fetch_recorded_dir(self.store, prefix, objects, target)
            except (ObjectNotFound, ChecksumMismatch) as exc:
                shutil.rmtree(target, ignore_errors=True)
                raise Refused(Failure(503, "model_unavailable", f"adapter files: {exc}")) from None
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
            with self._lock:
                self._fetching.pop(version_id, None)
                self._files[version_id] = _Files(target, sum(o.size for o in objects), users=1)
                self.fetches += 1
            return target

    def _use(self, version_id: str) -> Path | None:
        """Under the lock: mark the adapter's files used now, by one more request."""
        files = self._files.get(version_id)
        if files is None:
            return None
        files.users += 1
        self._files.move_to_end(version_id)
        return files.path

    def _release(self, version_id: str) -> None:
        with self._lock:
            files = self._files.get(version_id)
            if files is not None:
                files.users -= 1
            unused = self._over_budget()
        for path in unused:  # outside the lock: nothing refers to these any more
            shutil.rmtree(path, ignore_errors=True)

    def _over_budget(self) -> list[Path]:
        """Under the lock: drop unused files, least recently used first, until the rest
        fit in ``max_bytes`` (or only files in use are left); their paths."""
        total = sum(f.nbytes for f in self._files.values())
        dropped: list[Path] = []
        for version_id in list(self._files):
            if total <= self.max_bytes:
                break
            files = self._files[version_id]
            if files.users > 0:
                continue
            del self._files[version_id]
            total -= files.nbytes
            dropped.append(files.path)
            self.removals += 1
        return dropped
