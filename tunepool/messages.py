"""Every Celery task and queue name, defined once (DESIGN §13).

Worker and scheduler never import each other: each publishes the other's tasks by the
names here, and the Celery app (``commands.celery_app``) registers both sides' tasks under them.
A name changed here changes producer and consumer together; tests/test_messages.py
keeps every other production module from spelling one.
"""

from __future__ import annotations

# The control worker's queues: admission passes asked for by the API and the workers,
# and, apart, beat's housekeeping ticks, so that in Flower (its Tasks page filters by
# name and shows each task's queue as routing_key) the jobs are not lost among them.
CONTROL_QUEUE = "tunepool.control"
HOUSEKEEPING_QUEUE = "tunepool.housekeeping"
# Work on uploaded data that needs a tokenizer (the API has none): the control worker
# consumes it besides its own queue; more consumers may join (`celery ... -Q` this).
DATASET_QUEUE = "tunepool.datasets"

# Job tasks, each published to the queue of the worker admission placed the job on.
TRAIN_TASK = "tunepool.train"
INFER_TASK = "tunepool.infer"
# int8 quantisation of a registered model version.
COMPRESS_TASK = "tunepool.compress"
# Champion/challenger scoring of a scheduled retrain.
EVALUATE_TASK = "tunepool.evaluate"
# An uploaded dataset's word-piece statistics; it leaves `validating` for ready or failed.
CHECK_DATASET_TASK = "tunepool.check_dataset"

# The admission pass: asked for on submit and finish, and a beat tick as a safety net.
ADMIT_TASK = "tunepool.admit_pending_jobs"
# Beat's housekeeping ticks, named for what they do, under one prefix.
REAP_TASK = "tunepool.housekeeping.requeue_expired_leases"
RECONCILE_TASK = "tunepool.housekeeping.reconcile_queues_with_sql"
BACKUP_TASK = "tunepool.housekeeping.backup_database_and_objects"
MODEL_UPDATES_TASK = "tunepool.housekeeping.run_due_retrain_schedules"
ALERTS_TASK = "tunepool.housekeeping.evaluate_alert_rules"
EXPIRE_IDEMPOTENCY_KEYS_TASK = "tunepool.housekeeping.expire_idempotency_keys"
RETAIN_CHECKPOINTS_TASK = "tunepool.housekeeping.prune_old_checkpoints"
SWEEP_SCRATCH_TASK = "tunepool.housekeeping.sweep_scratch_space"


def worker_queue(worker_name: str) -> str:
    """Each worker consumes its own queue, so admission decides placement, not Celery."""
    return f"tunepool.worker.{worker_name}"
