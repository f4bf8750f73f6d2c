"""Thin Celery tasks and the worker's lifecycle hooks (register, heartbeat, retire).

Tasks take ids, never rows: load, call a plain function, record the outcome.
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_init, worker_ready, worker_shutdown, worker_shutting_down
from sqlalchemy.orm import configure_mappers

from scheduler.admission_requests import request_admission
from scheduler.cancellation import enforce_cancellations
from scheduler.pool import heartbeat, register, retire
from storage.db import transaction
from tunepool.gpu_stats import sample_gpus
from tunepool.observations import publish_gpu_samples
from tunepool.platform import current_platform
from tunepool.redis_client import warm_redis_version
from worker import fork_guard
from worker.identity import describe, worker_name
from worker.shutdown import begin_warm_shutdown

log = logging.getLogger(__name__)
_stop_heartbeat = threading.Event()


@shared_task(name="tunepool.train", ignore_result=True)
def train(job_id: str, team: str = "") -> str:
    # `team` only labels the task for operators (Flower shows its arguments).
    from worker.runner import run_training_job

    return _run_job(run_training_job, job_id)


@shared_task(name="tunepool.infer", ignore_result=True)
def infer(job_id: str, team: str = "") -> str:
    # `team` only labels the task for operators (Flower shows its arguments).
    from worker.model_jobs import run_inference_job

    return _run_job(run_inference_job, job_id)


@shared_task(name="tunepool.compress", ignore_result=True)
def compress(job_id: str, team: str = "") -> str:
    # `team` only labels the task for operators (Flower shows its arguments).
    from worker.model_jobs import run_compress_job

    return _run_job(run_compress_job, job_id)


@shared_task(name="tunepool.evaluate", ignore_result=True)
def evaluate(job_id: str, team: str = "") -> str:
    # `team` only labels the task for operators (Flower shows its arguments); admission
    # publishes it with every job type (scheduler.dispatch).
    from worker.evaluate_job import run_evaluate_job

    return _run_job(run_evaluate_job, job_id)


def _run_job(run: Any, job_id: str) -> str:
    platform = current_platform()
    outcome: str = run(platform, job_id, worker_name(platform.settings))
    if outcome != "not_claimed":
        # Slots just freed: let the next job in without waiting for the beat tick.
        try:
            request_admission(platform)
        except Exception:
            log.exception("admission after job %s failed; the beat tick will retry", job_id)
    return outcome


def _warm_for_children() -> None:
    """Do once in the parent what every one-job child would otherwise do itself.

    With one task per child, each job runs in a fresh fork, and whatever a child loads,
    builds or caches dies with it. Without this, each child imported the job modules
    (~60 ms of CPU; compiled from source where bytecode is not written), the SQL driver
    (for the first children) and configured the ORM mappers (~20 ms) on its first job;
    forked after this, a child finds them done. Runs at ``worker_init``, before the pool
    forks its first children.
    """
    # None of these imports torch at module level.
    import tunepool.data.errors  # noqa: F401
    import worker.evaluate_job
    import worker.model_jobs
    import worker.runner  # noqa: F401

    configure_mappers()
    # The engine (not a connection): its driver imported, its compiled-statement cache
    # shared with every child (tunepool.platform adopts it after the fork).
    current_platform().engine  # noqa: B018
    warm_redis_version()
    _warm_pdeathsig()


def _warm_pdeathsig() -> None:
    """Each new pool child sets its parent-death signal through billiard, which (with
    cffi imported, as minio's dependencies do) parses a C declaration with pycparser.
    Cold, that imports pycparser and builds its parser tables: ~30 ms of CPU in every
    child, so per job. Done once here, a child forked afterwards finds them built and
    pays under 1 ms. Reading the signal changes nothing."""
    from billiard.util import get_pdeathsig

    try:
        get_pdeathsig()
    except OSError:  # not Linux: billiard sets no signal there either
        pass


@worker_init.connect
def _on_init(**_: Any) -> None:
    _warm_for_children()


@worker_ready.connect
def _on_ready(**_: Any) -> None:
    # Celery's prefork pool runs gc.collect() before forking each child (celery#2927), and
    # with one task per child that is once per job: over every object the parent holds,
    # most of the parent's CPU under load. Objects alive now (imports, the app) are
    # permanent: freezing them takes them out of every later collection.
    gc.freeze()
    platform = current_platform()
    if not platform.settings.worker_name:
        # Only `tunepool worker` names its process; the control worker (scheduler ticks)
        # loads these tasks too, but it offers no slots and must never be given jobs.
        return
    info = describe(platform.settings)
    with transaction(platform.sessions) as session:
        register(session, info)
    log.info("worker %s registered with %d slot(s) on queue %s", info.name, info.slots, info.queue)
    threading.Thread(target=_beat_heart, args=(info.name,), name="heartbeat", daemon=True).start()
    request_admission(platform)


def _beat_heart(name: str) -> None:
    platform = current_platform()
    fork_guard.install()
    first = True
    while not _stop_heartbeat.wait(platform.settings.worker_heartbeat_s):
        if first:
            # What the first cycles imported and built (SQL, Redis and kombu modules,
            # ~20,000 objects) is permanent too: out of the gc.collect() before each fork.
            gc.freeze()
            first = False
        try:
            with fork_guard.guard, transaction(platform.sessions) as session:
                if not heartbeat(session, name):
                    register(session, describe(platform.settings))
            # Only this host can read its GPUs; /metrics serves them from Redis.
            publish_gpu_samples(
                platform.settings.redis_url,
                name,
                sample_gpus(),
                ttl_s=3 * platform.settings.worker_heartbeat_s,
            )
            # Only this host can signal its own job processes.
            with fork_guard.guard, transaction(platform.sessions) as session:
                enforce_cancellations(session, name, platform.settings.cancel_grace_s)
        except Exception:
            log.exception("heartbeat of %s failed; will retry", name)


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
