"""Builtin base models converted once for the whole platform, then fetched.

SmolLM2-135M-Instruct ships as a GGUF file; loading one dequantises it (about 20 s
here) and a job wants plain safetensors. The first worker that needs it converts it
and publishes the copy in the object store (``storage.converted_models``); every later
job, on this worker or another, fetches that copy (checksums verified) into the
host's model cache, and a job on a host that has it uses the local copy at once.

On one host a file lock lets one process convert or fetch while the others wait for
its result. Across hosts two first conversions may run at once: each uploads under a
build of its own and publishes in one transaction, so neither can corrupt the other
and every host then takes the same (oldest) build.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage.blobs import fetch_dir, store_dir
from storage.converted_models import published_build
from storage.db import transaction
from storage.ids import new_id
from storage.layout import BASE_MODEL_PUBLISHED, base_model_build_prefix
from storage.objects.base import ObjectStore
from tunepool.builtin_models import SMOLLM2_NAME, smollm2_gguf_path, smollm2_source_id
from worker.training.causal_lm.base_models import (
    convert_gguf_to_safetensors,
    is_converted,
    mark_converted,
    publish_dir,
)

log = logging.getLogger(__name__)

# (source file, output directory) -> the output directory, a Hugging Face model.
Convert = Callable[[Path, Path], Path]


@dataclass(frozen=True)
class BuiltinSource:
    """What a builtin model is converted from: ``source_id`` names it in keys and caches."""

    name: str
    source_id: str
    path: Path


def smollm2_source() -> BuiltinSource:
    return BuiltinSource(SMOLLM2_NAME, smollm2_source_id(), smollm2_gguf_path())


def converted_base_dir(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    source: BuiltinSource,
    cache_dir: Path,
    convert: Convert = convert_gguf_to_safetensors,
) -> Path:
    """A local directory holding ``source`` converted: this host's copy, else the
    platform's published copy fetched, else converted here and published."""
    local = Path(cache_dir) / source.name / source.source_id
    if is_converted(local):
        return local
    with _host_lock(local.parent / ".lock"):
        if is_converted(local):  # another process of this host finished meanwhile
            return local
        with sessions() as session:
            build = published_build(session, source.name, source.source_id)
            if build is not None:
                partial = Path(tempfile.mkdtemp(prefix=".fetch.", dir=local.parent))
                try:
                    fetch_dir(session, store, build, partial)
                    mark_converted(partial, build)
                    publish_dir(partial, local)
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
                return local
        log.info("converting %s from %s (once for the platform)", source.name, source.path)
        work = Path(tempfile.mkdtemp(prefix=".convert.", dir=local.parent))
        try:
            out = convert(source.path, work / "model")
            build = base_model_build_prefix(source.name, source.source_id, new_id("build"))
            (out / BASE_MODEL_PUBLISHED).write_text(
                json.dumps({"name": source.name, "source": source.source_id, "build": build}),
                encoding="utf-8",
            )
            # Every upload first, then every row (published.json's too) in one commit.
            with transaction(sessions) as session:
                store_dir(session, store, build, out)
            mark_converted(out, build)
            publish_dir(out, local)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return local


@contextlib.contextmanager
def _host_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
