"""The system schedule, as data: what beat fires and how often, and the one beat that fires it."""

from __future__ import annotations

from typing import Any

from celery import Celery

from tunepool.messages import (
    ADMIT_TASK,
    ALERTS_TASK,
    BACKUP_TASK,
    EXPIRE_IDEMPOTENCY_KEYS_TASK,
    HOUSEKEEPING_QUEUE,
    MODEL_UPDATES_TASK,
    REAP_TASK,
    RECONCILE_TASK,
    RETAIN_CHECKPOINTS_TASK,
    SWEEP_SCRATCH_TASK,
)
from tunepool.settings import Settings


def system_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "admission": {
            "task": ADMIT_TASK,
            "schedule": settings.admission_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.admission_interval_s},
        },
        "reaper": {
            "task": REAP_TASK,
            "schedule": settings.reaper_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.reaper_interval_s},
        },
        "reconciler": {
            "task": RECONCILE_TASK,
            "schedule": settings.reconcile_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.reconcile_interval_s},
        },
        "backup": {
            "task": BACKUP_TASK,
            "schedule": settings.backup_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.backup_interval_s},
        },
        # Team schedules (storage.schedules): fires due ones, advances finished runs.
        "model_updates": {
            "task": MODEL_UPDATES_TASK,
            "schedule": 60.0,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 60.0},
        },
        "alerts": {
            "task": ALERTS_TASK,
            "schedule": settings.alert_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.alert_interval_s},
        },
        # Idempotency keys answer retries for a day (settings.idempotency_keep_s), then go.
        "idempotency_keys": {
            "task": EXPIRE_IDEMPOTENCY_KEYS_TASK,
            "schedule": 3600.0,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": 3600.0},
        },
        # Finished jobs keep their best and newest K checkpoints (storage.retention); the
        # runner applies it as a job ends, this catches jobs that ended without a runner.
        "checkpoint_retention": {
            "task": RETAIN_CHECKPOINTS_TASK,
            "schedule": settings.retention_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.retention_interval_s},
        },
        # Scratch that killed runs left on the control worker's host (the workers' own
        # hosts sweep theirs on start and from their heartbeat: worker.tasks).
        "scratch_sweep": {
            "task": SWEEP_SCRATCH_TASK,
            "schedule": settings.scratch_sweep_interval_s,
            "options": {"queue": HOUSEKEEPING_QUEUE, "expires": settings.scratch_sweep_interval_s},
        },
    }


def configure_beat(app: Celery, settings: Settings) -> None:
    """Give the composition root's app (``commands.celery_app``) the schedule and its scheduler."""
    app.conf.beat_schedule = system_schedule(settings)
    # One active beat: redbeat's Redis lock, entries' last run times kept in Redis.
    app.conf.beat_scheduler = "scheduler.single_beat:SingleBeatScheduler"
    app.conf.beat_max_loop_interval = settings.beat_max_loop_interval_s
    app.conf.redbeat_redis_url = settings.redis_url
    app.conf.redbeat_key_prefix = "tunepool:beat:"
    app.conf.redbeat_lock_timeout = settings.beat_lock_timeout_s
