"""The reconciler (DESIGN §2): what Redis lost is rebuilt from SQL.

A job that is ``queued`` in SQL has been placed on a worker and its message
published. If Redis restarts without persistence, or a message is otherwise lost,
the job would sit in ``queued`` until the reaper's claim timeout gives it back to
admission. The reconciler looks for each queued job's message in Redis (its
worker's queue and the broker's unacked hash) and publishes it again when it is
not there. Publishing twice is safe: the claim is a compare-and-set, so a
duplicate delivery finds nothing to claim and exits.

A dataset's check (``tunepool.check_dataset``) is a message too: a dataset still
``validating`` long after its upload whose message is in neither place is sent again,
as safely (``storage.dataset_status.finish_check`` is a compare-and-set).

Jobs whose worker vanished (``running`` with an expired lease, or placed on a lost
worker) are the reaper's (``scheduler.ticks.run_reaper``), not this module's.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from scheduler.admission import Publish
from scheduler.dispatch import TASK_FOR_TYPE, celery_publisher
from storage.dataset_status import DatasetStatus
from storage.db import transaction
from storage.models import Dataset, Job
from storage.platform import Platform
from storage.states import JobState, record_event
from tunepool.messages import CHECK_DATASET_TASK, DATASET_QUEUE, worker_queue

log = logging.getLogger(__name__)

# kombu's Redis transport keeps fetched-but-unacknowledged messages in this hash.
UNACKED_KEY = "unacked"

JOB_TASKS = frozenset(TASK_FOR_TYPE.values())

# The ids (jobs, datasets) with a message in Redis, given the queues to look in.
FindMessages = Callable[[Iterable[str]], set[str]]


def job_id_of(raw: bytes | str, tasks: Collection[str] = JOB_TASKS) -> str | None:
    """The id a kombu message on Redis carries as its first argument (a job's, or a
    dataset's for its check), if it is a message of one of ``tasks``."""
    try:
        message: dict[str, Any] = json.loads(raw)
        if message.get("headers", {}).get("task") not in tasks:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]  # Celery protocol 2: [args, kwargs, embed]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def redis_messages(client: redis.Redis, tasks: Collection[str] = JOB_TASKS) -> FindMessages:
    def find(queues: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for queue in set(queues):
            for raw in client.lrange(queue, 0, -1):
                if (job_id := job_id_of(raw, tasks)) is not None:
                    found.add(job_id)
        for value in client.hvals(UNACKED_KEY):
            try:
                message = json.dumps(json.loads(value)[0])  # [message, exchange, routing key]
            except (ValueError, IndexError, TypeError):
                continue
            if (job_id := job_id_of(message, tasks)) is not None:
                found.add(job_id)
        return found

    return find


def republish_lost(
    session: Session,
    find_messages: FindMessages,
    publish: Publish,
    grace_s: float,
    now: float | None = None,
) -> list[str]:
    """Publish again every job queued for at least ``grace_s`` whose message is not in Redis.

    The grace covers the moment between a worker fetching the message and claiming
    the row, when the message is in neither place; a duplicate there is harmless.
    """
    now = now or time.time()
    stale = list(
        session.scalars(
            select(Job)
            # Only what a republish needs: a spec this pass cannot read must not stop it.
            .options(load_only(Job.id, Job.type, Job.worker_name, Job.queued_at))
            .where(Job.state == JobState.QUEUED.value, Job.queued_at < now - grace_s)
            .order_by(Job.queued_at, Job.id)
        )
    )
    if not stale:
        return []
    present = find_messages(worker_queue(job.worker_name) for job in stale if job.worker_name)
    republished: list[str] = []
    for job in stale:
        if job.id in present or job.worker_name is None:
            continue
        queue = worker_queue(job.worker_name)
        record_event(
            session,
            job.id,
            "republished",
            reason=f"message not found in Redis; published again to {queue}",
            data={"queue": queue},
        )
        session.commit()  # the record first, as with every publish (DESIGN §2)
        publish(job.id, queue, job.type)
        republished.append(job.id)
    return republished


def resend_dataset_checks(
    session: Session,
    find_messages: FindMessages,
    send: Callable[[str], None],
    grace_s: float,
    now: float | None = None,
) -> list[str]:
    """Ask again for the check of every dataset ``validating`` for at least ``grace_s``
    whose message is not in Redis (lost with Redis, or never sent: the API only logs a
    send that failed). A check that is running has its message in neither place either:
    the grace is longer than a check takes, and a duplicate changes nothing."""
    now = now or time.time()
    stale = list(
        session.scalars(
            select(Dataset.id)
            .where(
                Dataset.status == DatasetStatus.VALIDATING.value,
                Dataset.created_at < now - grace_s,
            )
            .order_by(Dataset.created_at, Dataset.id)
        )
    )
    if not stale:
        return []
    present = find_messages([DATASET_QUEUE])
    missing = [dataset_id for dataset_id in stale if dataset_id not in present]
    for dataset_id in missing:
        send(dataset_id)
    return missing


def run_reconciler(platform: Platform) -> list[str]:
    settings = platform.settings
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    try:
        with transaction(platform.sessions) as session:
            republished = republish_lost(
                session,
                redis_messages(client),
                celery_publisher(platform.celery),
                settings.reconcile_grace_s,
            )
            checks = resend_dataset_checks(
                session,
                redis_messages(client, {CHECK_DATASET_TASK}),
                lambda dataset_id: platform.celery.send_task(
                    CHECK_DATASET_TASK, args=[dataset_id], queue=DATASET_QUEUE
                ),
                settings.dataset_check_grace_s,
            )
    finally:
        client.close()
    if checks:
        log.warning("reconciler: asked again for the check of dataset(s) %s", checks)
    if republished:
        log.warning(
            "reconciler: published again %d job(s) whose message was lost: %s",
            len(republished),
            republished,
        )
    return republished
