"""The Celery application factory and the settings that matter (DESIGN §10).

An app built here publishes by task name (``tunepool.messages``) and registers no
tasks: the API, the scheduler and the worker use it to send; ``commands.celery_app``, the
composition root, adds the beat schedule and both sides' task modules for the
``celery`` command line. No torch here: the worker's parent process must never
initialise CUDA (a forked child cannot use a CUDA context created before the fork).
"""

from __future__ import annotations

from celery import Celery

from tunepool.messages import CONTROL_QUEUE
from tunepool.settings import Settings, load_settings


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("tunepool", broker=settings.redis_url, backend=None)
    app.conf.update(
        task_default_queue=CONTROL_QUEUE,
        # Training runs for hours: ack on receipt, never on completion. The SQL lease,
        # not Redis' visibility timeout, recovers a crashed run (DESIGN §3).
        task_acks_late=False,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_max_tasks_per_child=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # Above any fetch-to-ack gap; with early acks this only covers the instant
            # between fetch and ack, so re-delivery of unacked messages stays rare.
            "visibility_timeout": 3600,
            "unacked_restore_interval": 5,
            "socket_keepalive": True,
        },
        # Events on, so Flower and its Prometheus metrics see every task.
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    # No result backend, so nothing for beat's default celery.backend_cleanup to clean.
    app.conf.result_expires = None
    app.conf.tunepool_settings = settings
    return app
