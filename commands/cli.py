"""The ``tunepool`` command line: run the services, administer teams, run the demo."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from typing import Any

import click

from tunepool import __version__
from tunepool.settings import load_settings

CELERY_APP = "commands.celery_app:app"


@click.group()
@click.version_option(__version__, prog_name="tunepool", message="%(prog)s %(version)s")
def main() -> None:
    """tunepool: several teams share one GPU pool to fine-tune and serve transformer models."""


@main.command()
@click.option("--port", type=int, default=None, help="API port (default: a free one).")
@click.option("--flower-port", type=int, default=None, help="Flower port (default: a free one).")
@click.option("--slots", type=int, default=1, show_default=True, help="Slots of the local worker.")
def up(port: int | None, flower_port: int | None, slots: int) -> None:
    """Start the whole platform on this machine; Ctrl-C stops it."""
    from commands.embedded import start_platform

    settings = load_settings()
    platform = start_platform(settings, api_port=port, flower_port=flower_port, worker_slots=slots)
    creds = ensure_default_team(
        platform.settings,
        platform.api_url,
        platform.flower_url,
        platform.env["TUNEPOOL_FLOWER_PASSWORD"],
    )
    click.echo(f"Dashboard {platform.api_url}/ui/")
    click.echo(f"API     {platform.api_url}")
    click.echo(
        f"Flower  {platform.flower_url}  (user {creds['flower_user']}, "
        f"password {creds['flower_password']})"
    )
    for team, key in creds["teams"].items():
        click.echo(f"team {team}: API key {key}")
    click.echo(
        f"credentials in {platform.settings.credentials_path}; logs in {settings.home / 'logs'}"
    )
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    # What dies is restarted with backoff (commands.supervisor); its log says why it died.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    platform.supervise_redis()
    try:
        while not stopping:
            platform.supervise()
            time.sleep(0.5)
    finally:
        click.echo("stopping ...")
        platform.stop()


def ensure_default_team(
    settings: Any, api_url: str, flower_url: str, flower_password: str
) -> dict[str, Any]:
    """First start: a 'default' team with an admin key; later starts reuse what was written."""
    from commands.embedded import read_credentials, write_credentials
    from storage.db import make_engine, make_session_factory, transaction
    from storage.teams import create_team

    creds = read_credentials(settings)
    teams: dict[str, str] = dict(creds.get("teams") or {})
    if not teams:
        engine = make_engine(settings.resolved_database_url)
        with transaction(make_session_factory(engine)) as session:
            _, key = create_team(session, "default", role="admin", operator=True)
        engine.dispose()
        teams["default"] = key
    creds.update(
        {
            "api_url": api_url,
            "flower_url": flower_url,
            "flower_user": settings.flower_user,
            "flower_password": flower_password,
            "teams": teams,
        }
    )
    write_credentials(settings, creds)
    return creds


@main.command()
@click.option("--slots", type=int, default=None, help="Slots offered (default: GPU count, or 1).")
@click.option("--name", default=None, help="Worker name (default: <host>-<pid>).")
@click.option("--loglevel", default="info", show_default=True)
def worker(slots: int | None, name: str | None, loglevel: str) -> None:
    """Run a training worker: one job per slot, each in a fresh process."""
    settings = load_settings()
    name = name or settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"
    # Children (the tasks) read the same name and slots from the environment.
    os.environ["TUNEPOOL_WORKER_NAME"] = name
    if slots:
        os.environ["TUNEPOOL_WORKER_SLOTS"] = str(slots)
    from tunepool.messages import worker_queue
    from worker.identity import describe
    from worker.priority import yield_cpu

    info = describe(load_settings())
    if info.gpus:
        from worker.cuda_check import gpu_torch_mismatch, torch_cuda_build

        refused = gpu_torch_mismatch(info.gpus, torch_cuda_build())
        if refused is not None:
            raise click.ClickException(refused)
    # Before the exec: Celery and every job process it forks inherit the priority.
    yield_cpu(settings.worker_nice)
    _exec_worker(
        "--queues",
        worker_queue(name),
        "--concurrency",
        str(info.slots),
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        loglevel,
    )


@main.command()
@click.option("--name", default=None, help="Serving worker name (default: <host>-<pid>-serve).")
@click.option("--loglevel", default="info", show_default=True)
def serve(name: str | None, loglevel: str) -> None:
    """Run an inference worker: holds models and answers online predictions."""
    from worker.serving.main import serve_until_signalled

    serve_until_signalled(load_settings(), name, loglevel)


@main.command()
@click.option("--loglevel", default="info", show_default=True)
def control(loglevel: str) -> None:
    """Run the control worker: the scheduler's ticks (admission, reaper) and dataset checks."""
    from tunepool.messages import CONTROL_QUEUE, DATASET_QUEUE, HOUSEKEEPING_QUEUE

    queues = f"{CONTROL_QUEUE},{HOUSEKEEPING_QUEUE},{DATASET_QUEUE}"
    _exec_worker(
        "--queues", queues, "--pool", "solo", "--hostname", "control@%h", "--loglevel", loglevel
    )


@main.command()
@click.option("--loglevel", default="info", show_default=True)
def beat(loglevel: str) -> None:
    """Run Celery beat with the system schedule."""
    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    _exec_celery("beat", "-s", str(settings.home / "beat-schedule"), "-l", loglevel)


@main.command()
@click.option("--address", default="0.0.0.0", show_default=True)
@click.option("--port", type=int, default=5555, show_default=True)
def flower(address: str, port: int) -> None:
    """Run Flower behind basic auth (TUNEPOOL_FLOWER_USER / TUNEPOOL_FLOWER_PASSWORD)."""
    settings = load_settings()
    if not settings.flower_password:
        raise click.ClickException("set TUNEPOOL_FLOWER_PASSWORD: Flower never runs without auth")
    # Through Flower's own environment option, not argv, where `ps` would show the password.
    os.environ["FLOWER_BASIC_AUTH"] = f"{settings.flower_user}:{settings.flower_password}"
    _exec_celery("flower", f"--address={address}", f"--port={port}")


def _exec_celery(*args: str) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", CELERY_APP, *args])


def _exec_worker(*args: str) -> None:
    """A Celery worker without the ``celery`` command line (commands.celery_worker)."""
    os.execv(sys.executable, [sys.executable, "-m", "commands.celery_worker", *args])


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (safe to repeat)."""
    from storage.db import make_engine
    from storage.schema import upgrade

    engine = make_engine(load_settings().resolved_database_url)
    upgrade(engine)
    engine.dispose()
    click.echo("database is at the newest schema")


@main.group()
def admin() -> None:
    """Teams and keys."""


@admin.command("create-team")
@click.argument("name")
@click.option("--weight", type=float, default=1.0, show_default=True)
@click.option("--max-gpus", type=int, default=None)
@click.option("--operator", is_flag=True, help="Its admins manage every team's quotas and keys.")
@click.option(
    "--role",
    type=click.Choice(["admin", "member", "viewer"]),
    default="admin",
    show_default=True,
    help="Role of the first key.",
)
def create_team_cmd(
    name: str, weight: float, max_gpus: int | None, operator: bool, role: str
) -> None:
    """Create a team and print its first API key (shown only this once)."""
    from storage.db import make_engine, make_session_factory, transaction
    from storage.schema import upgrade
    from storage.teams import TeamError, create_team

    engine = make_engine(load_settings().resolved_database_url)
    upgrade(engine)
    try:
        with transaction(make_session_factory(engine)) as session:
            team, key = create_team(
                session, name, weight=weight, max_gpus=max_gpus, role=role, operator=operator
            )
    except TeamError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"team {team.name} ({team.id})")
    click.echo(key)


@main.command()
@click.option("--sentences", type=int, default=480, show_default=True)
@click.option("--epochs", type=int, default=3, show_default=True)
def demo(sentences: int, epochs: int) -> None:
    """Start the platform, fine-tune the packaged MiniLM on generated NER data, print reports."""
    from commands.demo import run_demo

    sys.exit(run_demo(sentences=sentences, epochs=epochs))


# Commands defined in modules of their own (CONTRIBUTING): one line each.
from commands.backup_commands import backup, restore  # noqa: E402

main.add_command(backup)
main.add_command(restore)

from commands.cli_client import COMMANDS as API_COMMANDS  # noqa: E402

for _command in API_COMMANDS:  # datasets, jobs, models, predict, pool, teams
    main.add_command(_command)

from commands.cli_client import datasets, models  # noqa: E402
from commands.cli_show import datasets_show, models_show  # noqa: E402

datasets.add_command(datasets_show)
models.add_command(models_show)

from commands.cli_inference import infer  # noqa: E402

main.add_command(infer)
