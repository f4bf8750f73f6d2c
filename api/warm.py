"""Warm an API process before it takes requests.

A process builds much on first use: SQLAlchemy configures its mappers, psycopg is
imported and the dialect reads the server's settings on the first connect, the key
lookup is compiled, a submit's hyperparameter check imports its modules, Celery builds
its producer. Left to the first requests, that is 100-370 ms of CPU with the GIL held,
and every other request in the gunicorn worker waits through it: in bench/load.py the
first requests of a burst were a fifth of its slowest 1%.

Nothing here writes, and a database that does not answer yet does not stop the start:
the first request connects, as it would have anyway.
"""

from __future__ import annotations

import logging

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import configure_mappers

from storage.teams import authenticate
from tunepool.platform import Platform
from worker.celery_app import warm_publisher

log = logging.getLogger(__name__)

# A key of the right shape whose prefix no key has: the lookup runs and finds nothing.
_NO_SUCH_KEY = "tp_warmup_0"


def warm(app: Flask) -> None:
    platform: Platform = app.extensions["tunepool"]
    configure_mappers()
    # What a submit's hyperparameter check imports (lazily, for the worker's sake).
    import worker.training.spec  # noqa: F401

    warm_publisher(platform.celery)
    try:
        with platform.sessions() as session:
            authenticate(session, _NO_SUCH_KEY)
    except SQLAlchemyError as exc:
        log.warning(
            "the database did not answer while the API started (%s); the first request "
            "will connect",
            type(exc).__name__,
        )
