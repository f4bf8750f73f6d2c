"""gunicorn's server hooks for the API: ``gunicorn -c python:api.gunicorn_hooks``.

Kept out of ``api.wsgi`` so that importing the app (tests, tools) connects to nothing.
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """In each worker, after it loaded the app and before it takes a request."""
    from api.warm import warm
    from api.wsgi import app

    warm(app)
    # Everything built so far (modules, the app, SQLAlchemy's mappers, Celery, the warmed
    # caches) lives as long as the process: frozen, the collector no longer walks it. A
    # full collection walked all of it while the worker held the GIL, stalling every
    # request in the process: 116-474 ms each under load (bench/load.py), 23-133 ms
    # once frozen.
    gc.collect()
    gc.freeze()
