"""Rules of the house that a refactor could silently break."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import make_engine
from storage.schema import upgrade
from storage.tables import metadata


def test_the_api_and_scheduler_never_import_torch() -> None:
    # The API runs on machines without GPUs and must start fast; it publishes by task name.
    code = (
        "import sys, api.app, api.wsgi, scheduler.ticks, scheduler.tasks, worker.tasks;"
        "import tunepool.app;"
        "import worker.training.spec, tunepool.data.token_files, tunepool.data.stats;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TUNEPOOL_HOME": "/tmp/tunepool-arch-test", "PATH": ""},
    )
    assert result.returncode == 0, f"imported {result.stdout.strip()} {result.stderr[-2000:]}"


def test_engine_imports_no_celery_flask_or_sql() -> None:
    code = (
        "import sys, worker.training.engine;"
        "bad = [m for m in ('celery', 'flask', 'sqlalchemy') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"imported {result.stdout.strip()} {result.stderr[-2000:]}"


def test_migrations_match_the_models(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"
