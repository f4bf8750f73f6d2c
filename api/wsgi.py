"""WSGI entry point for gunicorn: ``gunicorn 'api.wsgi:app'``.

Each gunicorn worker warms the app before it takes a request: api/gunicorn_hooks.py.
"""

from api.app import create_app

app = create_app()
