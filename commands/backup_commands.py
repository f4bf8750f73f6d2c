"""``tunepool backup [--verify]`` and ``tunepool restore <backup>`` (DESIGN §8)."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING

import click

from tunepool.settings import load_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from storage.objects.base import ObjectStore


def _handles() -> tuple[Engine, ObjectStore]:
    from storage.db import make_engine
    from storage.objects.factory import open_store

    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    store = open_store(
        settings.resolved_object_store_url,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
    )
    return engine, store


@click.command()
@click.option("--verify", is_flag=True, help="Check the newest backup (or --name) instead.")
@click.option("--name", default=None, help="With --verify: the backup to check.")
@click.option("--list", "list_", is_flag=True, help="List the complete backups.")
@click.option("--json", "as_json", is_flag=True, help="Print the list or the report as JSON.")
def backup(verify: bool, name: str | None, list_: bool, as_json: bool) -> None:
    """Back up the database and a checksummed manifest of every object to the object store."""
    from scheduler.backup import BackupError, create_backup, list_backups, prune, verify_backup

    engine, store = _handles()
    try:
        if list_:
            found = list(list_backups(store))
            for line in [json.dumps(found)] if as_json else found:
                click.echo(line)
            return
        if verify:
            report = verify_backup(store, name)
        else:
            settings = load_settings()
            backup_name, report = create_backup(engine, store)
            prune(store, settings.backup_keep_daily, settings.backup_keep_weekly)
            if not as_json:
                click.echo(f"backup {backup_name}: {report.objects} object(s) in the manifest")
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report)))
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}", err=True)
    if report.problems:
        sys.exit(1)
    if verify and not as_json:
        click.echo(f"backup {report.name}: database and {report.objects} object(s) verified")


@click.command()
@click.argument("name")
def restore(name: str) -> None:
    """Restore backup NAME into an empty database and verify every object it names."""
    from scheduler.backup import BackupError, restore_backup

    engine, store = _handles()
    try:
        report = restore_backup(engine, store, name)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}", err=True)
    if report.problems:
        sys.exit(1)
    click.echo(f"restored {name}: every row back, {report.objects} object(s) verified")
