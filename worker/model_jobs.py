"""Run jobs that use a registered model: batch ``inference`` and int8 ``compress``.

Mirrors ``worker.runner``: claim under a lease, fetch inputs verified against their
checksums, call the engine (``worker.inference``), record the outcome through the
state machine. The Celery tasks in ``worker.tasks`` are thin wrappers around
:func:`run_inference_job` and :func:`run_compress_job`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from storage.blobs import fetch_dir, fetch_file, store_dir, store_file
from storage.db import transaction
from storage.lease import Claim, claim, end_run, renew_lease
from storage.models import Dataset, Job, ModelVersion
from storage.registry import next_version
from storage.states import JobState, transition
from tunepool.platform import Platform
from worker.runner import _fail, model_prefix

log = logging.getLogger(__name__)
S = JobState
# Inputs predicted between two lease renewals / cancel checks.
CHUNK = 512


def predictions_key(team_id: str, job_id: str) -> str:
    return f"teams/{team_id}/jobs/{job_id}/predictions.jsonl"


def run_inference_job(platform: Platform, job_id: str, worker_name: str) -> str:
    """Returns not_claimed, succeeded, failed, cancelled or lease_lost."""
    return _run(platform, job_id, worker_name, _infer)


def run_compress_job(platform: Platform, job_id: str, worker_name: str) -> str:
    return _run(platform, job_id, worker_name, _compress)


def _run(platform: Platform, job_id: str, worker_name: str, body: Any) -> str:
    owner = f"{worker_name}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    with transaction(platform.sessions) as session:
        claimed = claim(session, job_id, worker_name, owner, platform.settings.lease_ttl_s)
    if claimed is None:
        log.info("job %s: nothing to claim for %s", job_id, worker_name)
        return "not_claimed"
    workdir = platform.settings.scratch_dir / job_id / f"attempt-{claimed.attempt}"
    try:
        with platform.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            spec, team_id = dict(job.spec), job.team_id
            source = session.get(ModelVersion, spec["model_version_id"])
            if source is None or source.team_id != team_id:
                return _fail(platform, claimed, f"model version {spec.get('model')} is gone")
            fetch_dir(session, platform.store, source.prefix, workdir / "model")
        outcome: str = body(platform, claimed, team_id, spec, source, workdir)
        return outcome
    except Exception as exc:
        log.exception("job %s failed", job_id)
        return _fail(
            platform, claimed, f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _keep_lease(platform: Platform, claimed: Claim) -> str | None:
    """Renew the lease; say why to stop (lease lost, cancel requested) or None to go on."""
    with transaction(platform.sessions) as session:
        if not renew_lease(session, claimed.job_id, claimed.owner, platform.settings.lease_ttl_s):
            return "lease_lost"
        job = session.get(Job, claimed.job_id, populate_existing=True)
        if job is not None and job.state == S.CANCELLING.value:
            return "cancel"
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
            end_run(session, claimed.job_id, claimed.owner, "cancelled")
    return "cancelled"


def _read_texts(platform: Platform, dataset_id: str, workdir: Path) -> list[str]:
    from tunepool.data.token_files import read_token_examples
    from worker.inference.evaluate import sentence_text

    with platform.sessions() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        path = workdir / f"input.{dataset.format}"
        fetch_file(session, platform.store, dataset.object_key, path)
        fmt = dataset.format
    return [sentence_text(e.tokens)[0] for e in read_token_examples(path, fmt)]


def _infer(
    platform: Platform,
    claimed: Claim,
    team_id: str,
    spec: dict[str, Any],
    source: ModelVersion,
    workdir: Path,
) -> str:
    from worker.inference.model import load_model
    from worker.inference.predict import predict

    texts = _read_texts(platform, spec["dataset"], workdir)
    loaded = load_model(workdir / "model")
    started = time.perf_counter()
    output = workdir / "predictions.jsonl"
    entities = 0
    with output.open("w", encoding="utf-8") as out:
        for begin in range(0, len(texts), CHUNK):
            stop = _keep_lease(platform, claimed)
            if stop == "lease_lost":
                return "lease_lost"
            if stop == "cancel":
                return _cancelled(platform, claimed)
            chunk = texts[begin : begin + CHUNK]
            for offset, (text, result) in enumerate(
                zip(chunk, predict(loaded, chunk, int(spec.get("batch_size", 32))), strict=True)
            ):
                entities += len(result.get("entities", []))
                record = {"index": begin + offset, "text": text, **result}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    seconds = time.perf_counter() - started
    key = predictions_key(team_id, claimed.job_id)
    with transaction(platform.sessions) as session:
        stored = store_file(session, platform.store, key, output)
        metrics = {
            "inputs": len(texts),
            "entities": entities,
            "seconds": round(seconds, 3),
            "inputs_per_s": round(len(texts) / seconds, 2) if seconds else None,
            "output_key": key,
            "output_bytes": stored.size,
            "output_sha256": stored.sha256,
            "model_version": source.version,
        }
        return _succeed(session, claimed, metrics, f"{len(texts)} predictions written")


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
        return "lease_lost"
    end_run(session, claimed.job_id, claimed.owner, "succeeded")
    return "succeeded"


def _evaluation_examples(platform: Platform, source: ModelVersion, workdir: Path) -> list[Any]:
    """The version's own evaluation set: the validation dataset its job trained with."""
    from tunepool.data.token_files import read_token_examples

    dataset_id = (source.lineage or {}).get("validation_dataset")
    if not dataset_id:
        return []
    with platform.sessions() as session:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.team_id != source.team_id:
            return []
        path = workdir / f"eval.{dataset.format}"
        fetch_file(session, platform.store, dataset.object_key, path)
        fmt = dataset.format
    return read_token_examples(path, fmt)


def _compress(
    platform: Platform,
    claimed: Claim,
    team_id: str,
    spec: dict[str, Any],
    source: ModelVersion,
    workdir: Path,
) -> str:
    from worker.inference.compress import compress

    examples = _evaluation_examples(platform, source, workdir)
    if _keep_lease(platform, claimed) == "lease_lost":
        return "lease_lost"
    report = compress(workdir / "model", workdir / "int8", examples)
    if _keep_lease(platform, claimed) == "lease_lost":
        return "lease_lost"
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
