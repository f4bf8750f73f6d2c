"""The one run envelope: every job, whatever its kind, is claimed, kept, stopped and
recorded here, and its engine only computes (DESIGN §13).

    claim under the lease -> log into the job -> keep the lease -> engine(context)
    -> record the outcome through the state machine -> retain checkpoints -> clean scratch

A warm shutdown (SIGTERM) asks resumable engines to checkpoint and give the job back
(``worker.shutdown``); a cancel or preempt request reaches engines through the stop
check of their context (``worker.lease_keeper``).
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

from storage import base_models
from storage.attempts import ENDED, AttemptOutcome, StopReason
from storage.db import transaction
from storage.lease import Claim, claim
from storage.models import Job
from storage.platform import Platform
from storage.retention import retain_finished
from storage.scratch import attempt_dir, release_scratch
from tunepool.data.errors import DataError
from worker.engines.context import EngineSettings, InputMissing, JobView, RunContext
from worker.engines.kinds import registration_for_job
from worker.engines.registry import Registration, UnknownJobKind
from worker.envelope.inputs import StoreInputs
from worker.envelope.outcome import fail, record_stop, succeed
from worker.job_callbacks import JobCallbacks
from worker.job_logs import JobLogHandler
from worker.shutdown import stop_on_sigterm

log = logging.getLogger(__name__)

# What engines that cannot resume are told of: a preempt request waits for them to end,
# and a warm shutdown waits for them too (the worker's parent lets running tasks finish).
_NON_RESUMABLE_STOPS = (StopReason.CANCEL, StopReason.LEASE_LOST)


def run_job(platform: Platform, job_id: str, worker_name: str) -> AttemptOutcome:
    """Run one delivery of a job; what came of it (``not_claimed`` for a duplicate)."""
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
    outcome = AttemptOutcome.LEASE_LOST
    try:
        # A warm shutdown (SIGTERM) now asks the engine to stop instead of killing it.
        with stop_on_sigterm():
            outcome, resumable = _run_claimed(platform, claimed, workdir, job_log)
        # Only a resumable run that made its workdir (or a later attempt) has checkpoints.
        if outcome in ENDED and resumable and (claimed.attempt > 1 or workdir.exists()):
            _retain_checkpoints(platform, job_id)
        return outcome
    finally:
        job_log.close()
        release_scratch(scratch, job_id, claimed.attempt, job_ended=outcome in ENDED)


def _run_claimed(
    platform: Platform, claimed: Claim, workdir: Path, job_log: JobLogHandler
) -> tuple[AttemptOutcome, bool]:
    with platform.sessions() as session:
        row = session.get(Job, claimed.job_id)
        assert row is not None
        gpu_indices = list(row.gpu_indices or [])
        job = JobView(
            id=row.id,
            team_id=row.team_id,
            type=row.type,
            task=row.task,
            spec=dict(row.spec),
            model_name=row.model_name,
            attempt=claimed.attempt,
            world_size=max(1, len(gpu_indices)),
        )
    if gpu_indices:
        # This process is fresh (one task per child) and has not imported torch yet,
        # so the job sees exactly the GPUs admission gave it.
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_indices)
    settings = platform.settings
    try:
        registration = registration_for_job(job, settings.allow_noop_engine)
    except UnknownJobKind as exc:
        job_log.flush()
        return fail(platform, claimed, str(exc)), False
    callbacks = JobCallbacks(platform, job.id, job.team_id, claimed.owner, claimed.attempt)
    callbacks.start_lease_keeper()
    try:
        context = RunContext(
            job=job,
            workdir=workdir,
            inputs=StoreInputs(platform, claimed, job.team_id, callbacks.keeper),
            callbacks=callbacks,
            stop_requested=_stop_check(callbacks, registration.resumable),
            settings=EngineSettings(
                checkpoint_every_steps=settings.checkpoint_every_steps,
                model_cache_dir=settings.model_cache_dir,
                allow_noop_engine=settings.allow_noop_engine,
            ),
        )
        outcome = _run_engine(platform, claimed, registration, context, callbacks, job_log)
        return outcome, registration.resumable
    finally:
        callbacks.stop_lease_keeper()


def _stop_check(callbacks: JobCallbacks, resumable: bool) -> Callable[[], StopReason | None]:
    if resumable:
        return callbacks.should_stop

    def cancel_or_lost() -> StopReason | None:
        reason = callbacks.keeper.stop_reason()
        return reason if reason in _NON_RESUMABLE_STOPS else None

    return cancel_or_lost


def _run_engine(
    platform: Platform,
    claimed: Claim,
    registration: Registration,
    context: RunContext,
    callbacks: JobCallbacks,
    job_log: JobLogHandler,
) -> AttemptOutcome:
    error, trace = None, ""
    try:
        result = registration.engine(context)
    except base_models.BaseModelRefused as exc:
        # Refused at submit too; here when the allow-list or the team's models changed since.
        error = f"base_model: {exc}"
    except DataError as exc:
        # Bad data fails the same way on every attempt: no retry.
        error = f"invalid data: {exc}"
    except InputMissing as exc:
        error = str(exc)
    except Exception as exc:
        log.exception("job %s failed", claimed.job_id)
        error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    # The job's log is written before its outcome, so whoever sees the job end reads
    # its whole log (lines flushed later would arrive after the end).
    job_log.flush()
    if error is not None:
        return fail(platform, claimed, error, trace=trace)
    if callbacks.lease_lost or result.stopped == StopReason.LEASE_LOST:
        # The reaper or another runner owns the job now; record (and upload) nothing more.
        return AttemptOutcome.LEASE_LOST
    if result.stopped is not None:
        with transaction(platform.sessions) as session:
            return record_stop(
                session, claimed, result.stopped, checkpointed=registration.resumable
            )
    if result.uploads and not callbacks.still_leased():
        return AttemptOutcome.LEASE_LOST  # only the lease holder may upload
    return succeed(platform, claimed, context.job, result)


def _retain_checkpoints(platform: Platform, job_id: str) -> None:
    """The job ended: its checkpoints come down to the best and newest K (storage.retention),
    and whatever a killed runner uploaded goes. If this fails, the retention tick retries."""
    try:
        with transaction(platform.sessions) as session:
            retain_finished(session, platform.store, job_id, platform.settings.keep_checkpoints)
    except Exception:
        log.exception("job %s: checkpoint retention failed; the retention tick retries", job_id)
