"""The periodic work of the scheduler, as plain functions over a Platform."""

from __future__ import annotations

import logging
import time

from scheduler.admission import Placement, admit
from scheduler.dispatch import celery_publisher
from scheduler.pool import mark_lost
from scheduler.wait_board import post_board
from storage import idempotency
from storage.db import transaction
from storage.lease import reap_expired, requeue_unclaimed
from storage.platform import Platform
from storage.retention import retain_finished, unretained_jobs
from storage.scratch import sweep_scratch
from storage.states import TERMINAL
from tunepool.admission_ask import record_pass
from tunepool.observations import observe_admission_pass
from tunepool.redis_client import redis_client
from tunepool.startup_times import startup_times

log = logging.getLogger(__name__)


def run_admission(platform: Platform) -> list[Placement]:
    # Before the session: nothing between opening it and the try that closes it.
    board = redis_client(platform.settings.redis_url)
    session = platform.sessions()
    started = time.perf_counter()
    try:
        return admit(
            session,
            celery_publisher(platform.celery),
            platform.settings,
            post=lambda places: post_board(board, places),
            startup=startup_times(board),
        )
    finally:
        session.close()
        took = time.perf_counter() - started
        record_pass(board, platform.settings, took)
        # Passes run in the API, workers and the control worker; /metrics reads them all.
        observe_admission_pass(platform.settings.redis_url, took)


def run_key_expiry(platform: Platform, now: float | None = None) -> int:
    """Forget Idempotency-Keys older than ``idempotency_keep_s``: the table would otherwise
    grow by a row for every create sent with a key. How many went."""
    cutoff = (time.time() if now is None else now) - platform.settings.idempotency_keep_s
    with transaction(platform.sessions) as session:
        forgotten = idempotency.expire(session, cutoff)
    if forgotten:
        log.info(
            "forgot %d idempotency key(s) older than %.0f s",
            forgotten,
            platform.settings.idempotency_keep_s,
        )
    return forgotten


def run_reaper(platform: Platform) -> dict[str, list[str]]:
    """Expired leases, lost workers and unclaimed jobs go back to pending; then admit."""
    settings = platform.settings
    with transaction(platform.sessions) as session:
        reaped = reap_expired(session)
        lost = mark_lost(session, settings.worker_lost_after_s)
        unclaimed = requeue_unclaimed(
            session, settings.claim_timeout_s, silent_after_s=settings.worker_stale_after_s
        )
    if reaped or lost or unclaimed:
        log.info("reaper: expired=%s lost_workers=%s unclaimed=%s", reaped, lost, unclaimed)
    run_admission(platform)
    return {"reaped": reaped, "lost_workers": lost, "unclaimed": unclaimed}


def run_retention(platform: Platform, batch: int = 50) -> list[str]:
    """Checkpoint retention for jobs that ended without their runner applying it: cancelled
    while pending, failed by the reaper, or whose runner died at the end. One transaction
    per job, so one that fails (an object store outage) leaves the others done."""
    with platform.sessions() as session:
        jobs = unretained_jobs(session, [s.value for s in TERMINAL], batch)
    done = []
    for job_id in jobs:
        try:
            with transaction(platform.sessions) as session:
                retain_finished(session, platform.store, job_id, platform.settings.keep_checkpoints)
            done.append(job_id)
        except Exception:
            log.exception("retention of job %s failed; the next tick retries", job_id)
    if done:
        log.info("retention: applied to %d finished job(s)", len(done))
    return done


def run_scratch_sweep(platform: Platform) -> list[str]:
    """Scratch directories on this host that no run can use (storage.scratch)."""
    with platform.sessions() as session:
        removed = sweep_scratch(session, platform.settings.scratch_dir)
    return [str(path) for path in removed]
