"""Thin Celery entry points for the scheduler's ticks (run on the control queue)."""

from __future__ import annotations

from celery import shared_task

from scheduler.ticks import (
    run_admission,
    run_key_expiry,
    run_reaper,
    run_retention,
    run_scratch_sweep,
)
from tunepool.platform import current_platform


@shared_task(name="tunepool.admit", ignore_result=True)
def admit_task() -> int:
    return len(run_admission(current_platform()))


@shared_task(name="tunepool.reap", ignore_result=True)
def reap_task() -> dict[str, list[str]]:
    return run_reaper(current_platform())


@shared_task(name="tunepool.reconcile", ignore_result=True)
def reconcile_task() -> list[str]:
    from scheduler.reconciler import run_reconciler

    return run_reconciler(current_platform())


@shared_task(name="tunepool.backup", ignore_result=True)
def backup_task() -> dict[str, object]:
    from scheduler.backup import run_backup

    return run_backup(current_platform())


@shared_task(name="tunepool.model_updates", ignore_result=True)
def model_updates_task() -> dict[str, list[str]]:
    from scheduler.model_updates import run_model_updates

    return run_model_updates(current_platform())


@shared_task(name="tunepool.alerts", ignore_result=True)
def alerts_task() -> int:
    from scheduler.alerts.engine import run_alerts

    return len(run_alerts(current_platform()))


@shared_task(name="tunepool.expire_idempotency_keys", ignore_result=True)
def expire_idempotency_keys_task() -> int:
    return run_key_expiry(current_platform())


@shared_task(name="tunepool.retain_checkpoints", ignore_result=True)
def retain_checkpoints_task() -> list[str]:
    return run_retention(current_platform())


@shared_task(name="tunepool.sweep_scratch", ignore_result=True)
def sweep_scratch_task() -> list[str]:
    return run_scratch_sweep(current_platform())
