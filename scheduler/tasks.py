"""Thin Celery entry points for the scheduler's ticks (beat sends them to housekeeping)."""

from __future__ import annotations

from celery import shared_task

from scheduler.ticks import (
    run_admission,
    run_key_expiry,
    run_reaper,
    run_retention,
    run_scratch_sweep,
)
from storage.platform import current_platform
from tunepool.messages import (
    ADMIT_TASK,
    ALERTS_TASK,
    BACKUP_TASK,
    EXPIRE_IDEMPOTENCY_KEYS_TASK,
    MODEL_UPDATES_TASK,
    REAP_TASK,
    RECONCILE_TASK,
    RETAIN_CHECKPOINTS_TASK,
    SWEEP_SCRATCH_TASK,
)


@shared_task(name=ADMIT_TASK, ignore_result=True)
def admit_task() -> int:
    return len(run_admission(current_platform()))


@shared_task(name=REAP_TASK, ignore_result=True)
def reap_task() -> dict[str, list[str]]:
    return run_reaper(current_platform())


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile_task() -> list[str]:
    from scheduler.reconciler import run_reconciler

    return run_reconciler(current_platform())


@shared_task(name=BACKUP_TASK, ignore_result=True)
def backup_task() -> dict[str, object]:
    from scheduler.backup import run_backup

    return run_backup(current_platform())


@shared_task(name=MODEL_UPDATES_TASK, ignore_result=True)
def model_updates_task() -> dict[str, list[str]]:
    from scheduler.model_updates import run_model_updates

    return run_model_updates(current_platform())


@shared_task(name=ALERTS_TASK, ignore_result=True)
def alerts_task() -> int:
    from scheduler.alerts.engine import run_alerts

    return len(run_alerts(current_platform()))


@shared_task(name=EXPIRE_IDEMPOTENCY_KEYS_TASK, ignore_result=True)
def expire_idempotency_keys_task() -> int:
    return run_key_expiry(current_platform())


@shared_task(name=RETAIN_CHECKPOINTS_TASK, ignore_result=True)
def retain_checkpoints_task() -> list[str]:
    return run_retention(current_platform())


@shared_task(name=SWEEP_SCRATCH_TASK, ignore_result=True)
def sweep_scratch_task() -> list[str]:
    return run_scratch_sweep(current_platform())
