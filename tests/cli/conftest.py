"""A live API on a free loopback port (Werkzeug's threaded server, the real app) in front of
real worker subprocesses: what the CLI, the browser and the openai client talk to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import make_server

from api.app import create_app
from commands.netutil import free_port
from storage.db import transaction
from storage.teams import create_team
from tests.conftest import TINY_BASE_MODEL
from tests.e2e.conftest import WorkerProcs, e2e_database_url, live  # noqa: F401


@dataclass
class LiveApi:
    url: str
    key: str
    workers: WorkerProcs


@pytest.fixture
def live_api(live: WorkerProcs) -> Iterator[LiveApi]:  # noqa: F811
    app = create_app(platform=live.platform)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with transaction(live.platform.sessions) as session:
        _, key = create_team(session, "cli", role="member")
    yield LiveApi(f"http://127.0.0.1:{port}", key, live)
    server.shutdown()
    thread.join(10)


@pytest.fixture(scope="session")
def tiny_model(tiny_base_models: dict[str, str]) -> str:
    """The tiny model's allow-listed name (the ``live`` platforms list it)."""
    return TINY_BASE_MODEL
