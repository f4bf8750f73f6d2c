"""Run a Celery worker of tunepool's app: ``python -m commands.celery_worker``.

``celery worker`` parses its arguments and then starts ``app.Worker`` (Celery's
documented program class, ``celery.apps.worker``); this module starts that class
directly. The ``celery`` command line would first import every CLI plugin installed
beside it (Flower with Tornado, the REPL with prompt_toolkit and Pygments): some 480
modules and a sixth of the parent's objects, none of which a worker uses. They cost
once per job: the prefork pool collects garbage in the parent before it forks each
job's process, walking every object the parent holds, and the child then copies the
pages it touches. ``tunepool worker`` and ``tunepool control`` exec this module; beat
and Flower keep the ``celery`` command line.
"""

from __future__ import annotations

import argparse
import sys

from celery.utils.log import mlevel
from celery.utils.nodenames import default_nodename, host_format
from celery.worker import WorkController


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m commands.celery_worker")
    parser.add_argument("--queues", required=True, help="Comma-separated queues to consume.")
    parser.add_argument("--hostname", required=True, help="Node name; %%h is the host.")
    parser.add_argument("--concurrency", type=int, default=None, help="Pool processes.")
    parser.add_argument("--pool", default=None, help="Pool class (prefork when omitted).")
    parser.add_argument("--loglevel", default="info")
    return parser.parse_args(argv)


def build_worker(argv: list[str] | None = None) -> WorkController:
    """The worker ``argv`` asks for, built but not started (nothing connects yet)."""
    args = _arguments(argv)
    # Imported here: building the app reads the settings from the environment.
    from commands.celery_app import app

    # Prefetch, one task per child and task events are the app's configuration
    # (tunepool.celery_factory), so nothing else from the command line is needed.
    worker: WorkController = app.Worker(
        hostname=host_format(default_nodename(args.hostname)),
        queues=args.queues,
        concurrency=args.concurrency,
        pool_cls=args.pool,
        loglevel=mlevel(args.loglevel.upper()),
    )
    return worker


def main(argv: list[str] | None = None) -> int:
    worker = build_worker(argv)
    worker.start()
    return int(worker.exitcode or 0)


if __name__ == "__main__":
    sys.exit(main())
