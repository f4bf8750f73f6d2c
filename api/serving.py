"""Online predictions in the API process: a byte-bounded LRU of loaded models, each with
its own micro-batcher.

Where it runs (first version): inside the API process, so a prediction needs no broker
round trip and no inference worker has to be up. torch is imported lazily, only when
the first model is loaded; importing this module (at app start) imports neither torch
nor transformers. Several API processes each keep their own cache. Moving serving onto
inference workers later keeps this interface: resolve the version, then ``predict``.

Settings come from the environment: TUNEPOOL_SERVE_MAX_BATCH (inputs per forward pass,
default 32), TUNEPOOL_SERVE_MAX_WAIT_MS (how long the first request of a batch waits for
company, default 10) and TUNEPOOL_SERVE_CACHE_BYTES (default 2 GiB of model state).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

from storage.blobs import fetch_dir
from storage.platform import Platform
from worker.inference.batcher import BatcherStats, MicroBatcher
from worker.inference.cache import ModelCache
from worker.inference.inputs import ModelInput, input_length

EXTENSION = "tunepool.serving"


@dataclass(frozen=True)
class ServingConfig:
    max_batch_size: int = 32
    max_wait_ms: float = 10.0
    cache_bytes: int = 2 * 1024**3

    @classmethod
    def from_env(cls) -> ServingConfig:
        env = os.environ
        return cls(
            max_batch_size=int(env.get("TUNEPOOL_SERVE_MAX_BATCH", cls.max_batch_size)),
            max_wait_ms=float(env.get("TUNEPOOL_SERVE_MAX_WAIT_MS", cls.max_wait_ms)),
            cache_bytes=int(env.get("TUNEPOOL_SERVE_CACHE_BYTES", cls.cache_bytes)),
        )


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


class Server:
    def __init__(self, platform: Platform, config: ServingConfig | None = None) -> None:
        self.platform = platform
        self.config = config or ServingConfig.from_env()
        self.cache: ModelCache[Served] = ModelCache(self.config.cache_bytes, lambda s: s.nbytes)

    def predict(self, version_id: str, prefix: str, inputs: Sequence[ModelInput]) -> list[Any]:
        """Predictions in input order; waits for the model to load if it is not loaded yet."""
        served = self.cache.get(version_id, lambda: self._load(version_id, prefix))
        return served.batcher.submit(inputs)

    def stats(self, version_id: str) -> BatcherStats | None:
        served = self.cache.peek(version_id)
        return served.batcher.stats if served is not None else None

    def _load(self, version_id: str, prefix: str) -> Served:
        directory = (
            self.platform.settings.scratch_dir / "serving" / f"{version_id}-{uuid.uuid4().hex[:8]}"
        )
        try:
            with self.platform.sessions() as session:
                fetch_dir(session, self.platform.store, prefix, directory)  # verified downloads
            from worker.inference.model import load_model
            from worker.inference.predict import forward

            loaded = load_model(directory)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        batcher = MicroBatcher(
            lambda inputs: forward(loaded, inputs),
            max_batch_size=self.config.max_batch_size,
            length=input_length,
            max_wait_ms=self.config.max_wait_ms,
            name=version_id,
        )
        return Served(loaded, batcher, directory)

    def close(self) -> None:
        self.cache.clear()


def server_for(app: Flask) -> Server:
    """The app's server, created on first use (tests may install their own first)."""
    server: Server | None = app.extensions.get(EXTENSION)
    if server is None:
        server = app.extensions.setdefault(EXTENSION, Server(app.extensions["tunepool"]))
    return server
