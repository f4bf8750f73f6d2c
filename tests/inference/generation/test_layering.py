"""The request and event types travel to the API side; the engine stays free of the web stack."""

from __future__ import annotations

import subprocess
import sys


def _imports(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_requests_and_streams_import_without_torch() -> None:
    # The API (no torch) will build requests and read events relayed from workers.
    code = (
        "import sys, worker.inference.generation.requests, worker.inference.generation.stream;"
        "print(','.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    assert _imports(code) == ""


def test_the_engine_imports_no_celery_flask_or_sql() -> None:
    code = (
        "import sys, worker.inference.generation.engine, worker.inference.generation.backend;"
        "print(','.join(m for m in ('celery', 'flask', 'sqlalchemy') if m in sys.modules))"
    )
    assert _imports(code) == ""
