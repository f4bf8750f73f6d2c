"""Every Celery task and queue name, defined once (DESIGN §13).

Worker and scheduler never import each other: each publishes the other's tasks by the
names here, and the Celery app (``tunepool.app``) registers both sides' tasks under them.
A name changed here changes producer and consumer together; tests/test_messages.py
keeps every other production module from spelling one.
"""

from __future__ import annotations

# The control worker's queue: the scheduler's ticks and deferred admission passes.
CONTROL_QUEUE = "tunepool.control"
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

# Scheduler ticks (beat fires them on the control queue; ADMIT_TASK is also asked for).
ADMIT_TASK = "tunepool.admit"
REAP_TASK = "tunepool.reap"
RECONCILE_TASK = "tunepool.reconcile"
BACKUP_TASK = "tunepool.backup"
MODEL_UPDATES_TASK = "tunepool.model_updates"
ALERTS_TASK = "tunepool.alerts"
EXPIRE_IDEMPOTENCY_KEYS_TASK = "tunepool.expire_idempotency_keys"
RETAIN_CHECKPOINTS_TASK = "tunepool.retain_checkpoints"
SWEEP_SCRATCH_TASK = "tunepool.sweep_scratch"


def worker_queue(worker_name: str) -> str:
    """Each worker consumes its own queue, so admission decides placement, not Celery."""
    return f"tunepool.worker.{worker_name}"
