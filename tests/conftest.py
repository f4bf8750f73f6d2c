"""Shared fixtures: real services started by the tests themselves.

- Redis: a private server per test session on a free loopback port.
- SQL: SQLite always; PostgreSQL on 127.0.0.1:5432 when it answers (required when CI=true),
  each test run in a database of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from commands.netutil import answers
from commands.redis_server import RedisServer, start_redis
from storage.db import make_engine, make_session_factory
from storage.schema import upgrade
from tests.serving_process import ServingProcess, serving_env

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Admission runs inline in the call that asks for it: most tests have no control worker
# to run a deferred pass (their Settings and worker subprocesses read this variable).
# tests/scheduler/test_admission_requests.py and the e2e burst test use the deferred,
# coalesced default of production.
os.environ.setdefault("TUNEPOOL_ADMISSION_COALESCE_S", "0")

POSTGRES_ADMIN_URL = os.environ.get(
    "TUNEPOOL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="chaos tests run their long version: more trials, longer outages (make soak)",
    )
    parser.addoption(
        "--readme",
        action="store_true",
        default=False,
        help="run every README snippet, the slow real fine-tunes too (make readme)",
    )


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> bool:
    """True under --soak: chaos tests repeat their trials and lengthen their outages."""
    return bool(request.config.getoption("--soak"))


# The allow-listed name (Settings.base_models) of a tiny random BERT that trains in
# seconds: jobs name base models, never paths (storage/base_models.py).
TINY_BASE_MODEL = "tiny"
# A tiny random Llama with a chat template: the base model of chat serving tests.
TINY_CHAT_BASE = "tiny-llama"


@pytest.fixture(scope="session")
def tiny_base_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``Settings.base_models`` of the test platforms: TINY_BASE_MODEL -> its directory."""
    from worker.training.causal_lm.base_models import make_tiny_llama_dir
    from worker.training.models import make_tiny_model_dir

    directory = make_tiny_model_dir(tmp_path_factory.mktemp("tiny-base") / "model")
    llama = make_tiny_llama_dir(tmp_path_factory.mktemp("tiny-llama") / "model")
    return {TINY_BASE_MODEL: str(directory), TINY_CHAT_BASE: str(llama)}


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a chat template (worker.training.causal_lm.base_models)."""
    from worker.training.causal_lm.base_models import make_tiny_llama_dir

    return make_tiny_llama_dir(tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"), persist=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def serving_objects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The object store of the API tests' platforms, which the session's serving worker
    reads (keys are per team and team ids unique: tests never see each other's files)."""
    return tmp_path_factory.mktemp("objects")


@pytest.fixture(scope="session")
def serving_worker(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    serving_objects: Path,
    tiny_base_models: dict[str, str],
) -> Iterator[ServingProcess]:
    """One real serving worker (`tunepool serve`) for the whole session, started on first use."""
    home = tmp_path_factory.mktemp("serving-home")
    env = serving_env(home, redis_server.url, serving_objects, tiny_base_models)
    worker = ServingProcess("test-serving", env, home / "serving.log").start()
    yield worker
    worker.stop()


@pytest.fixture
def serving(serving_worker: ServingProcess) -> ServingProcess:
    """The session's serving worker, ready (a test before may have flushed Redis)."""
    return serving_worker.wait_ready()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    if not answers(5432):
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL must answer on 127.0.0.1:5432 when CI=true")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"tunepool_test_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(engine: Engine) -> None:
    # A connection an earlier test left open (a killed worker's, a pool not yet disposed)
    # would hold locks that make DROP SCHEMA wait for ever: end them first.
    with engine.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL lock_timeout = '30s'"))
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage/API test runs against SQLite and PostgreSQL, on an empty schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tunepool.sqlite3'}"
    url: str = request.getfixturevalue("database_url_postgres")
    return url


@pytest.fixture
def database_url_postgres(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    engine = make_engine(postgres_url)
    _reset_postgres(engine)
    engine.dispose()
    return postgres_url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
