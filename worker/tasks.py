"""Thin Celery tasks and the worker's lifecycle hooks (register, heartbeat, retire).

Tasks take ids, never rows: load, call a plain function, record the outcome.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import billiard.util
from celery import shared_task
from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down
from sqlalchemy import select
from sqlalchemy.orm import configure_mappers

from storage.attempts import AttemptOutcome
from storage.db import transaction
from storage.models import Job
from storage.objects.base import ObjectStoreError
from storage.platform import Platform, current_platform
from storage.scratch import sweep_scratch
from storage.workers import heartbeat, register, retire
from tunepool.admission_ask import ask_for_admission
from tunepool.gpu_stats import sample_gpus
from tunepool.messages import (
    ADMIT_TASK,
    CHECK_DATASET_TASK,
    COMPRESS_TASK,
    CONTROL_QUEUE,
    EVALUATE_TASK,
    INFER_TASK,
    TRAIN_TASK,
)
from tunepool.observations import publish_gpu_samples
from worker import fork_guard
from worker.cancellation import enforce_cancellations
from worker.identity import describe, worker_name
from worker.shutdown import begin_warm_shutdown

log = logging.getLogger(__name__)
_stop_heartbeat = threading.Event()


class JobFailed(Exception):
    """The job failed; raised once the failure is recorded, so Celery's own state for the
    task (and so Flower's) is FAILURE, not SUCCESS.

    Listed in each job task's ``throws`` (Celery's documented "expected errors"): the
    worker logs it as one line, no traceback. Nothing retries it: no task sets retries,
    and messages are acknowledged on receipt (tunepool.celery_factory); the job's row, not
    the task, decides whether it runs again.
    """


@shared_task(name=TRAIN_TASK, ignore_result=True, throws=(JobFailed,))
def train(job_id: str, team: str = "") -> str:
    # `team` only labels the task for operators (Flower shows its arguments).
    return _run_job(job_id)


@shared_task(name=INFER_TASK, ignore_result=True, throws=(JobFailed,))
def infer(job_id: str, team: str = "") -> str:
    return _run_job(job_id)


@shared_task(name=COMPRESS_TASK, ignore_result=True, throws=(JobFailed,))
def compress(job_id: str, team: str = "") -> str:
    return _run_job(job_id)


@shared_task(name=EVALUATE_TASK, ignore_result=True, throws=(JobFailed,))
def evaluate(job_id: str, team: str = "") -> str:
    return _run_job(job_id)


@shared_task(
    name=CHECK_DATASET_TASK,
    ignore_result=True,
    # The object store briefly unreachable is no fault of the data: try again later.
    autoretry_for=(ObjectStoreError,),
    retry_backoff=True,
    max_retries=5,
)
def check_dataset(dataset_id: str) -> str:
    from worker.dataset_checks import check_dataset as run_check

    return run_check(current_platform(), dataset_id)


def _run_job(job_id: str) -> str:
    """Every job task: the one run envelope, which finds the job's engine by its kind."""
    from worker.envelope import run_job

    platform = current_platform()
    outcome = run_job(platform, job_id, worker_name(platform.settings))
    if outcome != AttemptOutcome.NOT_CLAIMED:
        # Slots just freed: let the next job in without waiting for the beat tick.
        try:
            _request_admission(platform)
        except Exception:
            log.exception("admission after job %s failed; the beat tick will retry", job_id)
    if outcome == AttemptOutcome.FAILED:
        with platform.sessions() as session:
            error = session.scalar(select(Job.error).where(Job.id == job_id))
        raise JobFailed(f"job {job_id} failed: {error or 'see its log'}")
    return outcome.value


def _request_admission(platform: Platform) -> None:
    """Ask for an admission pass by name (``tunepool.admission_ask``), as the API does.

    The worker never imports the scheduler. Inline mode (``admission_coalesce_s = 0``,
    no control worker) runs the admit task in this process, where the Celery app
    (``commands.celery_app``) registered it under its name beside this module's tasks; a
    process that loaded only the worker's tasks publishes it to the control queue.
    """

    def run_inline() -> None:
        admit = platform.celery.tasks.get(ADMIT_TASK)
        if admit is not None:
            admit()
        else:
            platform.celery.send_task(ADMIT_TASK, queue=CONTROL_QUEUE)

    ask_for_admission(platform, run_inline)


def _preload_for_children() -> None:
    """Import the job modules and configure the ORM once, before the pool forks.

    With one task per child, each job runs in a fresh fork: what the parent has loaded
    the child inherits, instead of importing and configuring it again for every job.
    """
    # None of these imports torch at module level.
    import worker.engines.kinds
    import worker.envelope  # noqa: F401

    configure_mappers()
    # The engine (not a connection): its driver imported and its compiled-statement
    # cache shared with every child (storage.platform adopts it after the fork).
    current_platform().engine  # noqa: B018
    preload_pdeathsig()


def preload_pdeathsig() -> None:
    """Do once in the parent what Celery's pool initialiser does in every child first.

    It sets the child's parent-death signal through billiard, which declares ``prctl``
    with cffi whenever cffi is installed (cryptography and argon2 bring it). The first
    declaration in a process imports pycparser and builds its parser: a forked child
    that only sets the signal spent 41 ms of CPU, and 5 ms once the parent had done it
    (reading the signal makes the same declaration and changes nothing).
    """
    with contextlib.suppress(OSError):
        billiard.util.get_pdeathsig()


@worker_init.connect
def _on_init(**_: Any) -> None:
    _preload_for_children()


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    platform = current_platform()
    if not platform.settings.worker_name:
        # Only `tunepool worker` names its process; the control worker (scheduler ticks)
        # loads these tasks too, but it offers no slots and must never be given jobs.
        return
    info = describe(platform.settings)
    with transaction(platform.sessions) as session:
        register(session, info)
    _sweep_scratch(platform)  # what a killed predecessor on this host left behind
    log.info("worker %s registered with %d slot(s) on queue %s", info.name, info.slots, info.queue)
    threading.Thread(target=_beat_heart, args=(info.name,), name="heartbeat", daemon=True).start()
    _request_admission(platform)


def _beat_heart(name: str) -> None:
    platform = current_platform()
    fork_guard.install()
    swept = time.monotonic()
    while not _stop_heartbeat.wait(platform.settings.worker_heartbeat_s):
        try:
            with fork_guard.guard, transaction(platform.sessions) as session:
                if not heartbeat(session, name):
                    register(session, describe(platform.settings))
            # Only this host can read its GPUs; /metrics serves them from Redis. nvidia-smi
            # starts while the pool cannot fork: a pool child forked meanwhile inherits the
            # pipes to it and holds them open, and this thread then waits on them for as
            # long as that child lives (seen under load: the heartbeat stopped for good).
            with fork_guard.guard:
                samples = sample_gpus()
            publish_gpu_samples(
                platform.settings.redis_url,
                name,
                samples,
                ttl_s=3 * platform.settings.worker_heartbeat_s,
            )
            # Only this host can signal its own job processes.
            with fork_guard.guard, transaction(platform.sessions) as session:
                enforce_cancellations(session, name, platform.settings.cancel_grace_s)
            # Only this host sees its scratch: a job process killed on its own (OOM)
            # leaves its directory while this worker lives on.
            if time.monotonic() - swept >= platform.settings.scratch_sweep_interval_s:
                swept = time.monotonic()
                with fork_guard.guard:
                    _sweep_scratch(platform)
        except Exception:
            log.exception("heartbeat of %s failed; will retry", name)


def _sweep_scratch(platform: Platform) -> None:
    try:
        with platform.sessions() as session:
            sweep_scratch(session, platform.settings.scratch_dir)
    except Exception:
        log.exception("scratch sweep failed; the next one retries")


@worker_shutting_down.connect
def _on_shutting_down(**_: Any) -> None:
    """Warm shutdown began (SIGTERM): running jobs checkpoint and go back to pending."""
    _stop_heartbeat.set()  # a heartbeat would mark this worker alive again
    platform = current_platform()
    # This runs inside the signal handler: SQL and signalling go to a thread.
    threading.Thread(
        target=begin_warm_shutdown,
        args=(platform.sessions, worker_name(platform.settings)),
        name="warm-shutdown",
        daemon=True,
    ).start()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    _stop_heartbeat.set()
    platform = current_platform()
    if not platform.settings.worker_name:
        return
    try:
        with transaction(platform.sessions) as session:
            retire(session, worker_name(platform.settings))
    except Exception:
        log.exception("could not retire worker")
