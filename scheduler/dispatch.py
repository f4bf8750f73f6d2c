"""Publishing admitted jobs to their worker's queue, by task name (no torch here)."""

from __future__ import annotations

import logging

from celery import Celery

from scheduler.admission import Publish
from tunepool.messages import COMPRESS_TASK, EVALUATE_TASK, INFER_TASK, TRAIN_TASK

log = logging.getLogger(__name__)


# Which Celery task runs each job type. A type not listed here cannot be admitted.
TASK_FOR_TYPE = {
    "finetune": TRAIN_TASK,
    "inference": INFER_TASK,
    "compress": COMPRESS_TASK,
    "evaluate": EVALUATE_TASK,
}


def celery_publisher(celery: Celery) -> Publish:
    def publish(job_id: str, queue: str, job_type: str, team: str = "") -> None:
        try:
            # The team goes along as a keyword so that Flower shows whose job a task is.
            kwargs = {"team": team} if team else {}
            celery.send_task(TASK_FOR_TYPE[job_type], args=[job_id], kwargs=kwargs, queue=queue)
        except Exception as exc:  # broker down: the job stays queued in SQL
            # The reaper's requeue of unclaimed jobs re-places it once the broker is back.
            log.warning("could not publish %s to %s: %s", job_id, queue, exc)

    return publish
