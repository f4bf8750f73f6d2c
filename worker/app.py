"""Module-level Celery app for the ``celery`` command line (worker, beat, flower).

Building a Celery app does not connect; settings come from TUNEPOOL_* variables.
"""

from worker.celery_app import make_celery

app = make_celery()
