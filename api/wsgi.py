"""WSGI entry point for gunicorn: ``gunicorn 'api.wsgi:app'``."""

import gc

from api.app import create_app
from api.warm import warm

app = create_app()
warm(app)

# Everything built so far (modules, the app, SQLAlchemy's mappers, Celery) lives as long as the
# process: frozen, the collector no longer walks it. A full collection walked all of it
# while the worker held the GIL, stalling every request in the process: 116-474 ms
# each under load (bench/load.py), 23-133 ms once frozen.
gc.collect()
gc.freeze()
