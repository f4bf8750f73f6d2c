"""Run jobs that use a registered model: batch ``inference`` and int8 ``compress``.

Mirrors ``worker.runner``: claim, hold the lease for the whole run (the one
``worker.lease_keeper`` every job kind uses), log into the job's log, fetch inputs
verified against their checksums, call the engine (``worker.inference``), record the
outcome through the state machine. The Celery tasks in ``worker.tasks`` are thin
wrappers around :func:`run_inference_job` and :func:`run_compress_job`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.attempts import AttemptOutcome, StopReason
from storage.blobs import fetch_dir, fetch_file, store_dir, store_file
from storage.db import transaction
from storage.layout import model_prefix, predictions_key
from storage.lease import Claim, claim, end_run
from storage.models import Dataset, Job, ModelVersion
from storage.platform import Platform
from storage.registry import next_version
from storage.states import JobState, transition
from worker.job_callbacks import record_progress
from worker.job_logs import JobLogHandler
from worker.lease_keeper import LeaseKeeper
from worker.runner import _fail

log = logging.getLogger(__name__)
S = JobState
# Inputs predicted between two progress reports and cancel checks (the lease is
# renewed in the background whatever a chunk takes).
CHUNK = 256

Body = Callable[[Platform, Claim, LeaseKeeper, str, dict[str, Any], ModelVersion, Path], str]


def run_inference_job(platform: Platform, job_id: str, worker_name: str) -> str:
    """Returns not_claimed, succeeded, failed, cancelled or lease_lost."""
    return _run(platform, job_id, worker_name, _infer)


def run_compress_job(platform: Platform, job_id: str, worker_name: str) -> str:
    return _run(platform, job_id, worker_name, _compress)


def _run(platform: Platform, job_id: str, worker_name: str, body: Body) -> str:
    owner = f"{worker_name}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    with transaction(platform.sessions) as session:
        claimed = claim(session, job_id, worker_name, owner, platform.settings.lease_ttl_s)
    if claimed is None:
        log.info("job %s: nothing to claim for %s", job_id, worker_name)
        return AttemptOutcome.NOT_CLAIMED
    workdir = platform.settings.scratch_dir / job_id / f"attempt-{claimed.attempt}"
    # What this process logs while the job runs becomes the job's log, as for training.
    job_log = JobLogHandler.attach(platform, job_id)
    log.info("job %s: attempt %d claimed by %s", job_id, claimed.attempt, worker_name)
    keeper = LeaseKeeper(platform, job_id, owner)
    keeper.start()
    try:
        with platform.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            spec, team_id = dict(job.spec), job.team_id
            source = session.get(ModelVersion, spec["model_version_id"])
            if source is None or source.team_id != team_id:
                return _fail(platform, claimed, f"model version {spec.get('model')} is gone")
            fetch_dir(session, platform.store, source.prefix, workdir / "model")
        keeper.alive()
        outcome: str = body(platform, claimed, keeper, team_id, spec, source, workdir)
        log.info("job %s: %s", job_id, outcome)
        return outcome
    except Exception as exc:
        log.exception("job %s failed", job_id)
        return _fail(
            platform, claimed, f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()
        )
    finally:
        keeper.stop()
        job_log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def stop_requested(platform: Platform, claimed: Claim, keeper: LeaseKeeper) -> str | None:
    """At a safe point of a run: the outcome to return if it must stop, else None.

    Lost lease: record nothing more. Cancel: the job is cancelled. A preempt request is
    not honoured: these runs are short and hold no checkpoint to resume from."""
    reason = keeper.stop_reason()
    if reason == StopReason.LEASE_LOST:
        return AttemptOutcome.LEASE_LOST
    if reason == StopReason.CANCEL:
        return _cancelled(platform, claimed)
    return None


def _cancelled(platform: Platform, claimed: Claim) -> str:
    with transaction(platform.sessions) as session:
        if transition(
            session,
            claimed.job_id,
            S.CANCELLED,
            reason="cancelled by request",
            expect={S.CANCELLING},
            lease_owner=claimed.owner,
            values={"worker_name": None},
        ):
            end_run(session, claimed.job_id, claimed.owner, AttemptOutcome.CANCELLED)
    return AttemptOutcome.CANCELLED


def _fetch_dataset(platform: Platform, dataset_id: str, path_stem: Path) -> tuple[Path, str, str]:
    """The dataset's file (verified download), its format and the task it was uploaded for."""
    with platform.sessions() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        path = path_stem.with_suffix(f".{dataset.format}")
        fetch_file(session, platform.store, dataset.object_key, path)
        return path, dataset.format, dataset.task


def _record(index: int, item: Any, result: dict[str, Any]) -> dict[str, Any]:
    """One output line: the input as given (a text, or its words) and its prediction."""
    given = {"text": item} if isinstance(item, str) else {"words": list(item)}
    return {"index": index, **given, **result}


def _report_progress(
    platform: Platform,
    claimed: Claim,
    keeper: LeaseKeeper,
    done: int,
    total: int,
    started: float,
) -> None:
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    event = {
        "done": done,
        "total": total,
        "inputs_per_s": round(rate, 2),
        "eta_s": round((total - done) / rate, 1) if rate else None,
    }
    if not record_progress(platform, claimed.job_id, claimed.owner, claimed.attempt, event):
        keeper.lease_lost = True  # stop_requested() ends the run before the next chunk
        return
    eta = f"{event['eta_s']:.0f}s" if event["eta_s"] is not None else "?"
    log.info("predicted %d/%d inputs, %.1f inputs/s, ETA %s", done, total, rate, eta)


def _infer(
    platform: Platform,
    claimed: Claim,
    keeper: LeaseKeeper,
    team_id: str,
    spec: dict[str, Any],
    source: ModelVersion,
    workdir: Path,
) -> str:
    from worker.inference.inputs import read_inputs
    from worker.inference.model import load_model
    from worker.inference.predict import predict

    path, fmt, dataset_task = _fetch_dataset(platform, spec["dataset"], workdir / "input")
    inputs = read_inputs(path, dataset_task, fmt)
    log.info("read %d inputs (%s %s)", len(inputs), dataset_task, fmt)
    keeper.alive()
    loaded = load_model(workdir / "model")
    log.info("loaded %s:%d (%s)", source.name, source.version, source.task)
    started = time.perf_counter()
    output = workdir / "predictions.jsonl"
    entities = 0
    batch_size = int(spec.get("batch_size", 32))
    with output.open("w", encoding="utf-8") as out:
        for begin in range(0, len(inputs), CHUNK):
            if (stopped := stop_requested(platform, claimed, keeper)) is not None:
                return stopped
            chunk = inputs[begin : begin + CHUNK]
            for offset, (item, result) in enumerate(
                zip(chunk, predict(loaded, chunk, batch_size), strict=True)
            ):
                entities += len(result.get("entities", []))
                record = _record(begin + offset, item, result)
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            _report_progress(platform, claimed, keeper, begin + len(chunk), len(inputs), started)
    if (stopped := stop_requested(platform, claimed, keeper)) is not None:
        return stopped
    seconds = time.perf_counter() - started
    key = predictions_key(team_id, claimed.job_id)
    with transaction(platform.sessions) as session:
        stored = store_file(session, platform.store, key, output)
        metrics = {
            "inputs": len(inputs),
            "entities": entities,
            "seconds": round(seconds, 3),
            "inputs_per_s": round(len(inputs) / seconds, 2) if seconds else None,
            "output_key": key,
            "output_bytes": stored.size,
            "output_sha256": stored.sha256,
            "model_version": source.version,
        }
        return _succeed(session, claimed, metrics, f"{len(inputs)} predictions written")


def _succeed(
    session: Any,
    claimed: Claim,
    metrics: dict[str, Any],
    reason: str,
    values: dict[str, Any] | None = None,
) -> str:
    moved = transition(
        session,
        claimed.job_id,
        S.SUCCEEDED,
        reason=reason,
        expect={S.RUNNING, S.CANCELLING, S.PREEMPTING},
        lease_owner=claimed.owner,
        values={"metrics": metrics, "worker_name": None, **(values or {})},
    )
    if not moved:
        session.rollback()
        return AttemptOutcome.LEASE_LOST
    end_run(session, claimed.job_id, claimed.owner, AttemptOutcome.SUCCEEDED)
    return AttemptOutcome.SUCCEEDED


def _evaluation_examples(platform: Platform, source: ModelVersion, workdir: Path) -> list[Any]:
    """The version's own evaluation set: the validation dataset its job trained with."""
    from worker.inference.inputs import read_examples

    dataset_id = (source.lineage or {}).get("validation_dataset")
    if not dataset_id:
        return []
    with platform.sessions() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.team_id != source.team_id:
            return []
    path, fmt, _task = _fetch_dataset(platform, dataset_id, workdir / "eval")
    return read_examples(source.task, path, fmt)


def _compress(
    platform: Platform,
    claimed: Claim,
    keeper: LeaseKeeper,
    team_id: str,
    spec: dict[str, Any],
    source: ModelVersion,
    workdir: Path,
) -> str:
    from worker.inference.compress import compress

    examples = _evaluation_examples(platform, source, workdir)
    if (stopped := stop_requested(platform, claimed, keeper)) is not None:
        return stopped
    log.info("quantising %s:%d, scored on %d examples", source.name, source.version, len(examples))
    report = compress(workdir / "model", workdir / "int8", examples)
    if (stopped := stop_requested(platform, claimed, keeper)) is not None:
        return stopped
    with platform.sessions() as session:
        version = next_version(session, team_id, source.name)
    prefix = model_prefix(team_id, source.name, version)
    with transaction(platform.sessions) as session:
        store_dir(session, platform.store, prefix, workdir / "int8")
    with transaction(platform.sessions) as session:
        model = ModelVersion(
            team_id=team_id,
            name=source.name,
            version=version,
            job_id=claimed.job_id,
            task=source.task,
            prefix=prefix,
            base_model=source.base_model,
            metrics={k: v for k, v in report.items() if isinstance(v, int | float | str)},
            lineage={
                **(source.lineage or {}),
                "compressed_from": {"version": source.version, "id": source.id},
                "quantization": report["quantization"],
                "job": claimed.job_id,
            },
        )
        session.add(model)
        session.flush()
        return _succeed(
            session,
            claimed,
            {**report, "model_version": version},
            f"int8 version {source.name}:{version} stored",
            {"model_version_id": model.id},
        )
