"""The Celery app for the ``celery`` command line (worker, control worker, beat, flower).

The composition root (DESIGN §13): worker and scheduler do not import each other, so
this module, above both, builds the app from the core's factory, gives it the
scheduler's beat schedule and registers both sides' tasks under the names in
``tunepool.messages``. Nothing below ``api``/``worker``/``scheduler`` imports it.
Building the app does not connect; settings come from TUNEPOOL_* variables.
"""

from __future__ import annotations

from celery import Celery

from scheduler.beat import configure_beat
from tunepool.celery_factory import make_celery
from tunepool.settings import Settings, load_settings

# Imported by the worker at start (Celery's `imports`), which registers their tasks;
# neither imports torch at module level.
TASK_MODULES = ("worker.tasks", "scheduler.tasks")


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = make_celery(settings)
    configure_beat(app, settings)
    app.conf.imports = TASK_MODULES
    return app


app = make_app()
