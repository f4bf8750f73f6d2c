"""The system schedule, as data: what beat fires and how often."""

from __future__ import annotations

from typing import Any

from tunepool.settings import Settings
from worker.celery_app import CONTROL_QUEUE


def system_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "admission": {
            "task": "tunepool.admit",
            "schedule": settings.admission_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.admission_interval_s},
        },
        "reaper": {
            "task": "tunepool.reap",
            "schedule": settings.reaper_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.reaper_interval_s},
        },
        "reconciler": {
            "task": "tunepool.reconcile",
            "schedule": settings.reconcile_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.reconcile_interval_s},
        },
        "backup": {
            "task": "tunepool.backup",
            "schedule": settings.backup_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.backup_interval_s},
        },
        # Team schedules (storage.schedules): fires due ones, advances finished runs.
        "model_updates": {
            "task": "tunepool.model_updates",
            "schedule": 60.0,
            "options": {"queue": CONTROL_QUEUE, "expires": 60.0},
        },
        "alerts": {
            "task": "tunepool.alerts",
            "schedule": settings.alert_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.alert_interval_s},
        },
        # Idempotency keys answer retries for a day (settings.idempotency_keep_s), then go.
        "idempotency_keys": {
            "task": "tunepool.expire_idempotency_keys",
            "schedule": 3600.0,
            "options": {"queue": CONTROL_QUEUE, "expires": 3600.0},
        },
        # Finished jobs keep their best and newest K checkpoints (storage.retention); the
        # runner applies it as a job ends, this catches jobs that ended without a runner.
        "checkpoint_retention": {
            "task": "tunepool.retain_checkpoints",
            "schedule": settings.retention_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.retention_interval_s},
        },
        # Scratch that killed runs left on the control worker's host (the workers' own
        # hosts sweep theirs on start and from their heartbeat: worker.tasks).
        "scratch_sweep": {
            "task": "tunepool.sweep_scratch",
            "schedule": settings.scratch_sweep_interval_s,
            "options": {"queue": CONTROL_QUEUE, "expires": settings.scratch_sweep_interval_s},
        },
    }
