"""The commands: the roof of the house and its composition root.

The ``tunepool`` command line (``up``, ``worker``, ``control``, ``beat``, ``demo``,
``backup``/``restore``, the API client commands) and the Celery app that registers the
worker's and the scheduler's tasks (``commands.celery_app``). Everything below is
imported from here; nothing below imports this package (the layers contract in
pyproject.toml).
"""
