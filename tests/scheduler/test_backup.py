"""Backup -> delete the database -> restore: every row back, every object's checksum matches."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import Engine

from commands.cli import main
from scheduler.backup import (
    BackupError,
    create_backup,
    list_backups,
    prune,
    read_manifest,
    restore_backup,
    to_keep,
    verify_backup,
)
from storage.blobs import store_stream, verify
from storage.db import make_engine, make_session_factory, transaction
from storage.models import Job, JobEvent, StoredObject
from storage.objects.base import ObjectStore
from storage.objects.filesystem import FilesystemStore
from storage.schema import upgrade
from storage.states import record_event
from storage.tables import metadata
from storage.teams import create_team
from tests.conftest import _reset_postgres


def _populate(engine: Engine, store: ObjectStore) -> None:
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        team, _ = create_team(session, "backup-team")
        for i in range(5):
            body = os.urandom(1000 + i * 517)
            store_stream(session, store, f"teams/{team.id}/objects/o{i}.bin", io.BytesIO(body))
        job = Job(
            team_id=team.id, type="finetune", task="ner", spec={"a": [1, 2.5]}, state="pending"
        )
        session.add(job)
        session.flush()
        for n in range(3):
            record_event(session, job.id, "progress", data={"step": n, "loss": 1 / (n + 1)})


def _all_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            t.name: sorted(
                (tuple(r) for r in conn.execute(select(t))), key=lambda r: tuple(map(str, r))
            )
            for t in metadata.sorted_tables
        }


def _empty_database(url: str, engine: Engine) -> Engine:
    """Delete the database: SQLite's files go; PostgreSQL's schema is dropped."""
    engine.dispose()
    if url.startswith("sqlite"):
        path = Path(url[len("sqlite:///") :])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        fresh = make_engine(url)
        _reset_postgres(fresh)
        fresh.dispose()
    return make_engine(url)


def _methods(url: str) -> list[str]:
    return ["sqlite"] if url.startswith("sqlite") else ["pg_dump", "logical"]


def test_backup_delete_restore_brings_back_every_row_and_object(
    database_url: str, tmp_path: Path
) -> None:
    store = FilesystemStore(tmp_path / "objects")
    for i, method in enumerate(_methods(database_url)):
        engine = _empty_database(database_url, make_engine(database_url))
        upgrade(engine)
        _populate(engine, store)
        before = _all_rows(engine)
        assert len(before["stored_objects"]) == 5
        name, report = create_backup(
            engine, store, method=method, now=datetime(2026, 1, 1 + i, tzinfo=UTC)
        )
        assert report.ok, report.problems
        assert read_manifest(store, name)["method"] == method

        engine = _empty_database(database_url, engine)
        restored = restore_backup(engine, store, name)
        assert restored.ok, restored.problems
        assert restored.objects == len(before["stored_objects"])
        assert _all_rows(engine) == before
        with make_session_factory(engine)() as session:
            keys = session.scalars(select(StoredObject.key)).all()
            assert keys and all(verify(session, store, k) for k in keys)
            # The restored database is usable: new rows get fresh ids past the restored ones.
            job_id = session.scalars(select(Job.id)).first()
            assert job_id is not None
            record_event(session, job_id, "progress", data={"step": 99})
            session.commit()
            assert session.scalar(select(JobEvent).where(JobEvent.data["step"].as_integer() == 99))
        engine.dispose()


def test_restore_refuses_a_database_that_has_data(database_url: str, tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "objects")
    engine = _empty_database(database_url, make_engine(database_url))
    upgrade(engine)
    _populate(engine, store)
    name, _ = create_backup(engine, store)
    with pytest.raises(BackupError, match="empty"):
        restore_backup(engine, store, name)
    engine.dispose()


def test_verify_reports_a_corrupted_object(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "TUNEPOOL_HOME": str(home),
        "TUNEPOOL_DATABASE_URL": database_url,
        "TUNEPOOL_OBJECT_STORE_URL": (tmp_path / "objects").as_uri(),
    }
    store = FilesystemStore(tmp_path / "objects")
    engine = _empty_database(database_url, make_engine(database_url))
    upgrade(engine)
    _populate(engine, store)
    engine.dispose()
    runner = CliRunner()
    made = runner.invoke(main, ["backup"], env=env)
    assert made.exit_code == 0, made.output
    ok = runner.invoke(main, ["backup", "--verify"], env=env)
    assert ok.exit_code == 0 and "verified" in ok.output, ok.output

    victim = read_manifest(store, list_backups(store)[-1])["objects"][2]["key"]
    path = store.root.joinpath(*victim.split("/"))
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    bad = runner.invoke(main, ["backup", "--verify"], env=env)
    assert bad.exit_code == 1
    assert f"PROBLEM {victim}: checksum mismatch" in bad.output
    assert [p.split(":")[0] for p in verify_backup(store).problems] == [victim]


def test_retention_keeps_n_daily_and_m_weekly() -> None:
    start = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # a Monday
    names = [
        (start + timedelta(hours=12 * i)).strftime("%Y%m%dT%H%M%SZ") for i in range(60)
    ]  # two a day for 30 days
    keep = to_keep(names, daily=3, weekly=2)
    newest = sorted(names)[-1]
    days = sorted({n[:8] for n in names})
    # The newest of each of the last three days, and the newest of the previous week.
    expected = {max(n for n in names if n.startswith(d)) for d in days[-3:]}
    last_week_start = datetime(2026, 3, 30, tzinfo=UTC)  # the Monday of the newest week
    prior = [n for n in names if n < last_week_start.strftime("%Y%m%dT%H%M%SZ")]
    expected.add(max(prior))
    assert newest in keep
    assert keep == expected


def test_prune_deletes_what_retention_drops(tmp_path: Path, database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("retention does not depend on the database")
    store = FilesystemStore(tmp_path / "objects")
    engine = make_engine(database_url)
    upgrade(engine)
    for day in range(1, 5):
        create_backup(engine, store, now=datetime(2026, 5, day, tzinfo=UTC))
    pruned = prune(store, daily=2, weekly=0)
    assert pruned == ["20260501T000000Z", "20260502T000000Z"]
    assert list_backups(store) == ["20260503T000000Z", "20260504T000000Z"]
    assert not list(store.list("backups/20260501T000000Z/"))
    engine.dispose()


def test_the_scheduled_backup_records_its_outcome_for_the_alerts(tmp_path: Path) -> None:
    from scheduler.backup import read_status, run_backup
    from storage.platform import Platform
    from tunepool.settings import Settings

    platform = Platform(Settings(home=tmp_path / "home"))
    upgrade(platform.engine)
    _populate(platform.engine, platform.store)
    result = run_backup(platform)
    status = read_status(platform.store)
    assert status is not None and status["ok"] and status["name"] == result["name"]
    assert list_backups(platform.store) == [result["name"]]
    platform.close()
