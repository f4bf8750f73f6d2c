"""Run one training job: claim -> fetch inputs -> engine -> record the outcome.

The Celery task is a thin wrapper around :func:`run_training_job`, which a test
or a benchmark can call directly.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import base_models
from storage.attempts import ENDED, AttemptOutcome, StopReason
from storage.blobs import fetch_dir, fetch_file, store_dir
from storage.db import transaction
from storage.layout import model_prefix
from storage.lease import Claim, claim, end_run, release, set_start_step
from storage.models import Checkpoint, Dataset, Job, ModelVersion
from storage.platform import Platform
from storage.registry import next_version
from storage.retention import retain_finished
from storage.scratch import attempt_dir, release_scratch
from storage.states import JobState, transition
from tunepool.builtin_models import SMOLLM2_SOURCE
from worker import noop_engine
from worker.job_callbacks import JobCallbacks
from worker.job_logs import JobLogHandler
from worker.shutdown import give_back, stop_on_sigterm

log = logging.getLogger(__name__)
S = JobState


def run_training_job(platform: Platform, job_id: str, worker_name: str) -> str:
    """Returns what happened: not_claimed, succeeded, failed, cancelled, preempted, lease_lost."""
    owner = f"{worker_name}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    with transaction(platform.sessions) as session:
        claimed = claim(
            session, job_id, worker_name, owner, platform.settings.lease_ttl_s, pid=os.getpid()
        )
    if claimed is None:
        # A duplicate delivery, or the job moved on (cancelled, re-placed): nothing to run.
        log.info("job %s: nothing to claim for %s", job_id, worker_name)
        return AttemptOutcome.NOT_CLAIMED
    scratch = platform.settings.scratch_dir
    workdir = attempt_dir(scratch, job_id, claimed.attempt)
    # What this process logs while the job runs becomes the job's log (GET /v1/jobs/<id>/logs).
    job_log = JobLogHandler.attach(platform, job_id, owner)
    log.info("job %s: attempt %d claimed by %s", job_id, claimed.attempt, worker_name)
    outcome: str = AttemptOutcome.LEASE_LOST
    try:
        # A warm shutdown (SIGTERM) now checkpoints and gives the job back instead of killing it.
        with stop_on_sigterm():
            outcome = _run_claimed(platform, claimed, workdir)
        # Only a real run (it made its workdir) or a later attempt can have left checkpoints.
        if outcome in ENDED and (claimed.attempt > 1 or workdir.exists()):
            _retain_checkpoints(platform, job_id)
        return outcome
    finally:
        job_log.close()
        release_scratch(scratch, job_id, claimed.attempt, job_ended=outcome in ENDED)


# What run_training_job answers when the job itself ended (no other run will follow).


def _retain_checkpoints(platform: Platform, job_id: str) -> None:
    """The job ended: its checkpoints come down to the best and newest K (storage.retention),
    and whatever a killed runner uploaded goes. If this fails, the retention tick retries."""
    try:
        with transaction(platform.sessions) as session:
            retain_finished(session, platform.store, job_id, platform.settings.keep_checkpoints)
    except Exception:
        log.exception("job %s: checkpoint retention failed; the retention tick retries", job_id)


def _run_claimed(platform: Platform, claimed: Claim, workdir: Path) -> str:
    job_id, owner = claimed.job_id, claimed.owner
    with platform.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        team_id, spec, task = job.team_id, dict(job.spec), job.task
        gpu_indices = list(job.gpu_indices or [])
    if gpu_indices:
        # This process is fresh (one task per child) and has not imported torch yet,
        # so the job sees exactly the GPUs admission gave it.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_indices)
    callbacks = JobCallbacks(platform, job_id, team_id, owner, claimed.attempt)
    callbacks.start_lease_keeper()
    try:
        return _train(platform, claimed, callbacks, team_id, spec, task, workdir)
    finally:
        callbacks.stop_lease_keeper()


def _train(
    platform: Platform,
    claimed: Claim,
    callbacks: JobCallbacks,
    team_id: str,
    spec: dict[str, Any],
    task: str,
    workdir: Path,
) -> str:
    from tunepool.data.errors import DataError

    job_id = claimed.job_id
    noop = noop_engine.requested(spec, platform.settings.allow_noop_engine)
    if noop is not None:
        return _run_noop(platform, claimed, callbacks, noop)
    try:
        train_spec = _prepare(platform, claimed, spec, task, workdir)
        from worker.training.engine import finetune

        result = finetune(train_spec, callbacks)
    except base_models.BaseModelRefused as exc:
        # Refused at submit too; here when the allow-list or the team's models changed since.
        return _fail(platform, claimed, f"base_model: {exc}")
    except DataError as exc:
        # Bad data fails the same way on every attempt: no retry.
        return _fail(platform, claimed, f"invalid data: {exc}")
    except Exception as exc:
        log.exception("job %s failed", job_id)
        return _fail(
            platform, claimed, f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()
        )

    if (
        callbacks.lease_lost
        or result.stopped == StopReason.LEASE_LOST
        or not callbacks.still_leased()
    ):
        # The reaper or another runner owns the job now; record (and upload) nothing more.
        return AttemptOutcome.LEASE_LOST
    if result.stopped is not None:
        with transaction(platform.sessions) as session:
            return _record_stop(session, claimed, result.stopped)
    metrics = {
        **result.metrics,
        "report": result.report,
        "global_step": result.global_step,
        # "auto" values resolved: what the run actually trained with.
        "hyperparameters_used": result.hyperparameters_used,
    }
    return _succeed(platform, claimed, team_id, spec, task, result.model_dir, metrics)


def _record_stop(session: Session, claimed: Claim, stopped: str) -> str:
    """The run checkpointed and stopped on request: record why, release the lease."""
    job_id, owner = claimed.job_id, claimed.owner
    if stopped == StopReason.CANCEL:
        release(
            session,
            job_id,
            owner,
            S.CANCELLED,
            expect={S.CANCELLING},
            reason="cancelled by request; checkpoint saved",
            outcome=AttemptOutcome.CANCELLED,
        )
        return AttemptOutcome.CANCELLED
    if stopped == StopReason.PREEMPT:
        # Why it was preempted (for which job, of which priority and team) is on the row,
        # set by the admission pass that asked; a row without it predates that.
        job = session.get(Job, job_id, populate_existing=True)
        code = (job.reason_code if job is not None else None) or "priority"
        cause = (job.reason if job is not None else None) or "preempted"
        release(
            session,
            job_id,
            owner,
            S.PENDING,
            expect={S.PREEMPTING},
            reason=f"{cause}; checkpointed, resumes from its checkpoint",
            outcome=AttemptOutcome.PREEMPTED,
            waiting=(code, cause),
        )
        return AttemptOutcome.PREEMPTED
    if stopped == StopReason.SHUTDOWN:
        return give_back(session, job_id, owner)
    raise ValueError(f"job {job_id}: unknown stop reason {stopped!r}")


def _run_noop(platform: Platform, claimed: Claim, callbacks: JobCallbacks, behaviour: str) -> str:
    """worker.noop_engine instead of training (tests and bench/load.py only)."""
    try:
        stopped = noop_engine.run(behaviour, callbacks)
    except ValueError as exc:
        return _fail(platform, claimed, str(exc))
    if callbacks.lease_lost or stopped == StopReason.LEASE_LOST:
        return AttemptOutcome.LEASE_LOST
    with transaction(platform.sessions) as session:
        if stopped is not None:
            return _record_stop(session, claimed, stopped)
        moved = transition(
            session,
            claimed.job_id,
            S.SUCCEEDED,
            reason=f"no-op engine ({behaviour}) finished",
            expect={S.RUNNING, S.CANCELLING, S.PREEMPTING},
            lease_owner=claimed.owner,
            values={"metrics": {"engine": "noop"}},
        )
        if moved:
            end_run(session, claimed.job_id, claimed.owner, AttemptOutcome.SUCCEEDED)
    return AttemptOutcome.SUCCEEDED if moved else AttemptOutcome.LEASE_LOST


def _prepare(
    platform: Platform, claimed: Claim, spec: dict[str, Any], task: str, workdir: Path
) -> Any:
    from worker.training.spec import Hyperparameters, TrainSpec

    hyper = dict(spec.get("hyperparameters") or {})
    if platform.settings.checkpoint_every_steps and "checkpoint_every_steps" not in hyper:
        hyper["checkpoint_every_steps"] = platform.settings.checkpoint_every_steps
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with platform.sessions() as session:
        job_row = session.get(Job, claimed.job_id)
        # One data-parallel process per GPU that admission gave the job (DDP when > 1).
        world_size = max(1, len(job_row.gpu_indices or [])) if job_row is not None else 1
        train = session.get(Dataset, spec["train_dataset"])
        assert train is not None
        train_path = data_dir / f"train.{train.format}"
        fetch_file(session, platform.store, train.object_key, train_path)
        validation_path, validation_format = None, None
        if spec.get("validation_dataset"):
            validation = session.get(Dataset, spec["validation_dataset"])
            assert validation is not None
            validation_path = data_dir / f"validation.{validation.format}"
            validation_format = validation.format
            fetch_file(session, platform.store, validation.object_key, validation_path)
        newest = session.scalar(
            select(Checkpoint)
            .where(Checkpoint.job_id == claimed.job_id)
            .order_by(Checkpoint.step.desc())
            .limit(1)
        )
        resume_from = None
        if newest is not None:
            resume_from = workdir / "resume"
            fetch_dir(session, platform.store, newest.prefix, resume_from)
    if newest is not None:
        with transaction(platform.sessions) as session:
            set_start_step(session, claimed.job_id, claimed.owner, newest.step)
    base_model = _base_model_source(
        platform, claimed, spec.get("base_model") or "all-MiniLM-L6-v2", workdir
    )
    return TrainSpec(
        task=task,
        base_model=base_model,
        train_file=train_path,
        train_format=train.format,
        validation_file=validation_path,
        validation_format=validation_format,
        output_dir=workdir / "model",
        # Keys left out are chosen from the data size by the engine ("auto").
        hyperparameters=Hyperparameters.from_dict(hyper, omitted_auto=True),
        resume_from=resume_from,
        world_size=world_size,
    )


def _base_model_source(platform: Platform, claimed: Claim, name: str, workdir: Path) -> str:
    """What the engine loads for ``name``, by the submit's rule (storage.base_models), never
    the string itself as a path: an allow-listed name becomes the operator's source, a
    model of the job's team (a masked-lm output, say) that version's files, fetched."""
    from worker.converted_models import converted_base_dir, smollm2_source
    from worker.training.models import resolve_base_model

    with platform.sessions() as session:
        job = session.get(Job, claimed.job_id)
        assert job is not None
        base = base_models.resolve(session, job.team_id, name, platform.settings)
        if isinstance(base, ModelVersion):
            target = workdir / "base_model"
            fetch_dir(session, platform.store, base.prefix, target)
            return str(target)
    if isinstance(base, base_models.Listed):
        if base.source == SMOLLM2_SOURCE:  # converted once for the platform, then fetched
            copy = converted_base_dir(
                platform.sessions,
                platform.store,
                smollm2_source(),
                platform.settings.model_cache_dir,
            )
            return str(copy)
        return resolve_base_model(base.source)
    # Noop: _train ran the no-op engine before asking, under the same setting.
    raise base_models.BaseModelRefused(f"{name!r} is a no-op engine, not a model")


def _succeed(
    platform: Platform,
    claimed: Claim,
    team_id: str,
    spec: dict[str, Any],
    task: str,
    model_dir: Path,
    metrics: dict[str, Any],
) -> str:
    job_id, owner = claimed.job_id, claimed.owner
    with platform.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        name = job.model_name or f"{task}-{job_id[-8:]}"
        version = next_version(session, team_id, name)
    prefix = model_prefix(team_id, name, version)
    with transaction(platform.sessions) as session:
        store_dir(session, platform.store, prefix, model_dir)
    with transaction(platform.sessions) as session:
        model = ModelVersion(
            team_id=team_id,
            name=name,
            version=version,
            job_id=job_id,
            task=task,
            prefix=prefix,
            base_model=str(spec.get("base_model") or "all-MiniLM-L6-v2"),
            metrics=_scalars(metrics),
            lineage={
                "train_dataset": spec.get("train_dataset"),
                "validation_dataset": spec.get("validation_dataset"),
                "hyperparameters": spec.get("hyperparameters") or {},
                # Checksums as trained on, so the lineage outlives a dataset's deletion.
                "datasets": {
                    ds.id: ds.sha256
                    for key in ("train_dataset", "validation_dataset")
                    if spec.get(key) and (ds := session.get(Dataset, spec[key])) is not None
                },
            },
        )
        session.add(model)
        session.flush()
        job = session.get(Job, job_id)
        assert job is not None
        moved = transition(
            session,
            job_id,
            S.SUCCEEDED,
            reason=f"model {name} version {version} stored",
            expect={S.RUNNING, S.CANCELLING, S.PREEMPTING},
            lease_owner=owner,
            values={"metrics": {**job.metrics, **metrics}, "model_version_id": model.id},
        )
        if not moved:
            # Lost the lease while uploading: another runner will produce the model.
            session.rollback()
            return AttemptOutcome.LEASE_LOST
        end_run(session, job_id, owner, AttemptOutcome.SUCCEEDED)
    return AttemptOutcome.SUCCEEDED


def _fail(platform: Platform, claimed: Claim, error: str, *, trace: str = "") -> str:
    """Failures inside the run are final; only a vanished process (lease expiry) is retried."""
    with transaction(platform.sessions) as session:
        moved = transition(
            session,
            claimed.job_id,
            S.FAILED,
            reason=error[:500],
            expect={S.RUNNING, S.CANCELLING, S.PREEMPTING},
            lease_owner=claimed.owner,
            values={"error": error, "worker_name": None},
            data={"traceback": trace[-4000:]} if trace else None,
        )
        if moved:
            end_run(session, claimed.job_id, claimed.owner, AttemptOutcome.FAILED)
    return AttemptOutcome.FAILED if moved else AttemptOutcome.LEASE_LOST


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}
