"""The worker's half of an upload's check: the statistics that need a tokenizer.

The API checked the file's format line by line and stored it ``validating``; here the
file is read again with the default base model's word-piece tokenizer, its statistics
replace the upload's and the dataset becomes ``ready``, or ``failed`` naming the
problem and its line (storage.dataset_status). The object store being unreachable is
not the data's fault: it raises, and the task is retried.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from storage.blobs import ChecksumMismatch, fetch_file
from storage.dataset_status import DatasetStatus, finish_check
from storage.db import transaction
from storage.models import Dataset
from storage.objects.base import ObjectNotFound
from storage.platform import Platform
from tunepool.data.describe import describe_file, needs_tokenizer
from tunepool.data.errors import DataError
from worker.chat_dataset_check import counted_chat_stats

log = logging.getLogger(__name__)

# The tokenizer whose word pieces an upload reports (a job's report recounts with its own).
DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"


def check_dataset(platform: Platform, dataset_id: str) -> str:
    """Move a validating dataset to ready or failed; its status after, or "skipped"."""
    with platform.sessions() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.status != DatasetStatus.VALIDATING:
            return "skipped"  # deleted, or a second delivery of a finished check
        task, fmt, key = dataset.task, dataset.format, dataset.object_key
    if not needs_tokenizer(task):
        return _finish(platform, dataset_id)  # the upload's statistics are all there is
    with tempfile.TemporaryDirectory(prefix="tunepool-check-") as tmp:
        path = Path(tmp) / f"data.{fmt}"
        try:
            with platform.sessions() as session:
                fetch_file(session, platform.store, key, path)
        except (ObjectNotFound, ChecksumMismatch) as exc:
            return _finish(platform, dataset_id, problem=f"file: {exc}")
        try:
            stats = _counted(platform, path, task, fmt)
        except DataError as exc:
            return _finish(platform, dataset_id, problem=exc.message, line=exc.line)
    return _finish(platform, dataset_id, stats=stats)


def _counted(platform: Platform, path: Path, task: str, fmt: str) -> dict | None:
    """The statistics with tokens counted; None where the upload's must stand."""
    if task == "causal-lm":
        return counted_chat_stats(platform, path, fmt)
    from worker.training.validation import base_model_tokenizer

    return describe_file(path, task, fmt, base_model_tokenizer(DEFAULT_BASE_MODEL))


def _finish(
    platform: Platform,
    dataset_id: str,
    *,
    stats: dict | None = None,
    problem: str | None = None,
    line: int | None = None,
) -> str:
    with transaction(platform.sessions) as session:
        moved = finish_check(session, dataset_id, stats=stats, problem=problem, line=line)
    if not moved:
        return "skipped"
    if problem is not None:
        log.warning("dataset %s failed its check: %s (line %s)", dataset_id, problem, line)
        return DatasetStatus.FAILED.value
    return DatasetStatus.READY.value
