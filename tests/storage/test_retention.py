"""Checkpoint retention: the best and the newest K stay; at a job's end nothing else does."""

from __future__ import annotations

import io

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.blobs import store_stream
from storage.layout import checkpoint_prefix, checkpoints_prefix
from storage.models import Checkpoint, Job, JobEvent, StoredObject, Team
from storage.objects.base import ObjectStore
from storage.retention import (
    RETAINED,
    kept_steps,
    prune_checkpoints,
    retain_finished,
    unretained_jobs,
)
from storage.states import record_event


def test_kept_steps_are_the_newest_k_and_the_best() -> None:
    assert kept_steps([5, 10, 15, 20], 2, best_step=10) == {10, 15, 20}
    assert kept_steps([5, 10, 15, 20], 2, best_step=20) == {15, 20}
    assert kept_steps([5, 10], 0, best_step=None) == {10}  # always at least the newest
    assert kept_steps([5, 10], 2, best_step=7) == {5, 10}  # a best never saved: nothing extra


def make_job(session: Session, state: str = "running") -> tuple[str, str]:
    team = Team(name=f"t-{len(session.scalars(select(Team)).all())}")
    session.add(team)
    session.flush()
    job = Job(
        team_id=team.id,
        type="finetune",
        task="token-classification",
        spec={},
        state=state,
        started_at=1.0,
    )
    session.add(job)
    session.commit()
    return team.id, job.id


def save_checkpoint(
    session: Session, store: ObjectStore, team: str, job: str, step: int, best: int
) -> None:
    """What JobCallbacks.on_checkpoint records: objects, the row, and the event."""
    prefix = checkpoint_prefix(team, job, step)
    for name in ("model.safetensors", "trainer_state.json"):
        store_stream(session, store, prefix + name, io.BytesIO(f"{step}{name}".encode()))
    session.add(Checkpoint(job_id=job, attempt=1, step=step, epoch=step / 10, prefix=prefix))
    record_event(session, job, "checkpoint", data={"step": step, "best_step": best})
    session.commit()


def keys_under(session: Session, store: ObjectStore, prefix: str) -> tuple[set[str], set[str]]:
    in_store = {info.key for info in store.list(prefix)}
    rows = set(
        session.scalars(
            select(StoredObject.key).where(StoredObject.key.startswith(prefix, autoescape=True))
        )
    )
    return in_store, rows


def test_pruning_while_running_keeps_the_best_even_when_it_is_old(
    sessions: sessionmaker[Session], store: ObjectStore
) -> None:
    with sessions() as session:
        team, job = make_job(session)
        for step in (5, 10, 15, 20):
            save_checkpoint(session, store, team, job, step, best=5)
            prune_checkpoints(session, store, job, keep_last=2)
            session.commit()
        steps = sorted(session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job)))
        assert steps == [5, 15, 20]
        in_store, rows = keys_under(session, store, checkpoints_prefix(team, job))
        assert in_store == rows
        assert {k.split("/")[-2] for k in rows} == {
            "step-00000005",
            "step-00000015",
            "step-00000020",
        }


def test_a_finished_job_keeps_only_what_retention_keeps_and_its_store_agrees_with_sql(
    sessions: sessionmaker[Session], store: ObjectStore
) -> None:
    with sessions() as session:
        team, job = make_job(session, state="succeeded")
        for step in (5, 10, 15, 20):
            save_checkpoint(session, store, team, job, step, best=10)
        # A runner killed mid-upload: objects and no rows at all.
        store.put(checkpoint_prefix(team, job, 25) + "model.safetensors", io.BytesIO(b"x"))
        # One killed between its upload's commit and its checkpoint's: rows, no checkpoint.
        store_stream(
            session, store, checkpoint_prefix(team, job, 30) + "optimizer.pt", io.BytesIO(b"y")
        )
        session.commit()
        # Another job's checkpoint is no business of this one's retention.
        other_team, other = make_job(session, state="running")
        save_checkpoint(session, store, other_team, other, 5, best=5)

        assert unretained_jobs(session, ["succeeded"], 10) == [job]
        retain_finished(session, store, job, keep_last=2)
        session.commit()

        kept = sorted(session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job)))
        assert kept == [10, 15, 20]
        in_store, rows = keys_under(session, store, checkpoints_prefix(team, job))
        expected = {
            checkpoint_prefix(team, job, step) + name
            for step in kept
            for name in ("model.safetensors", "trainer_state.json")
        }
        assert in_store == rows == expected
        assert keys_under(session, store, checkpoints_prefix(other_team, other))[0]
        assert unretained_jobs(session, ["succeeded"], 10) == []
        recorded = session.scalar(
            select(JobEvent.data).where(JobEvent.job_id == job, JobEvent.kind == RETAINED)
        )
        assert recorded is not None and recorded["kept_steps"] == [10, 15, 20]
        assert recorded["objects_deleted"] == 2 * 1 + 1 + 1  # step 5's two, 25's, 30's
