"""The models a serving worker holds: a byte-bounded LRU of loaded versions, each with
its own micro-batcher, so concurrent requests for one model share forward passes.

A version is fetched from the object store by the list of recorded objects the API
sends with the request (sizes and SHA-256 verified), so the serving worker never reads
the database. torch is imported on the first load, not when this module is.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storage.blobs import Recorded, fetch_recorded_dir
from storage.objects.base import ObjectStore
from worker.inference.batcher import MicroBatcher
from worker.inference.cache import ModelCache
from worker.inference.inputs import ModelInput, input_length


class Served:
    """One loaded model version, its batcher and its local files."""

    def __init__(self, loaded: Any, batcher: MicroBatcher, directory: Path) -> None:
        self.loaded, self.batcher, self.directory = loaded, batcher, directory

    @property
    def nbytes(self) -> int:
        return int(self.loaded.nbytes)

    def close(self) -> None:
        self.batcher.close()
        shutil.rmtree(self.directory, ignore_errors=True)


class ModelShelf:
    def __init__(
        self,
        store: ObjectStore,
        directory: Path,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 10.0,
        cache_bytes: int = 2 * 1024**3,
    ) -> None:
        # This worker's own: what a killed predecessor of the same name left goes now.
        self.store, self.directory = store, directory
        shutil.rmtree(directory, ignore_errors=True)
        self.max_batch_size, self.max_wait_ms = max_batch_size, max_wait_ms
        self.cache: ModelCache[Served] = ModelCache(cache_bytes, lambda s: s.nbytes)
        self._lock = threading.Lock()
        self._loading: set[str] = set()
        self._loads: Counter[str] = Counter()

    def predict(
        self, version_id: str, prefix: str, objects: list[Recorded], inputs: Sequence[ModelInput]
    ) -> list[Any]:
        """Predictions in input order; waits for the model to load if it is not loaded yet."""
        served = self.cache.get(version_id, lambda: self._load(version_id, prefix, objects))
        return served.batcher.submit(inputs)

    def held(self) -> dict[str, dict[str, int]]:
        """Per loaded version: its bytes, the times it was loaded, and what it served."""
        held = {}
        for key in list(self.cache.keys()):
            served = self.cache.peek(key)
            if served is None:
                continue
            stats = served.batcher.stats
            held[key] = {
                "bytes": served.nbytes,
                "loads": self._loads[key],
                "requests": stats.requests,
                "inputs": stats.inputs,
                "forward_passes": stats.forward_passes,
            }
        return held

    def loading(self) -> list[str]:
        with self._lock:
            return sorted(self._loading)

    def _load(self, version_id: str, prefix: str, objects: list[Recorded]) -> Served:
        directory = self.directory / f"{version_id}-{uuid.uuid4().hex[:8]}"
        with self._lock:
            self._loading.add(version_id)
        try:
            fetch_recorded_dir(self.store, prefix, objects, directory)
            from worker.inference.model import load_model
            from worker.inference.predict import forward

            loaded = load_model(directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        finally:
            with self._lock:
                self._loading.discard(version_id)
        with self._lock:
            self._loads[version_id] += 1
        batcher = MicroBatcher(
            lambda inputs: forward(loaded, inputs),
            max_batch_size=self.max_batch_size,
            length=input_length,
            max_wait_ms=self.max_wait_ms,
            name=version_id,
        )
        return Served(loaded, batcher, directory)

    def close(self) -> None:
        self.cache.clear()
