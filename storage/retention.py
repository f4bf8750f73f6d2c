"""Checkpoint retention (DESIGN §6): a job keeps its best and its newest K checkpoints.

While a job runs, each new checkpoint prunes the older ones that retention does not
keep. When the job ends (succeeded, failed or cancelled) the same rule runs once more
and also clears whatever else lies under the job's checkpoints prefix: uploads that a
killed or superseded runner left without a row, or with rows but no checkpoint. The
rule is the same for every ending: a succeeded job's model is stored apart (under
``models/``), so its checkpoints are only what the OpenAI-compatible checkpoint list
shows and what a later run could continue from; the best and the newest K are kept for
that, the rest go.

The best checkpoint is the one written at the step where the run's best evaluation so
far was reached; the worker records that step with every checkpoint event
(``best_step``), since only the run knows which metric decides and in which direction.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.blobs import delete_prefix
from storage.layout import checkpoints_prefix
from storage.models import Checkpoint, Job, JobEvent, StoredObject
from storage.objects.base import ObjectStore
from storage.states import record_event

# The event that says a finished job's checkpoints were brought down to what is kept.
RETAINED = "retention"


def kept_steps(steps: Iterable[int], keep_last: int, best_step: int | None) -> set[int]:
    """The newest ``keep_last`` steps (at least one) and the best step, if it was saved."""
    ordered = sorted(set(steps), reverse=True)
    kept = set(ordered[: max(1, keep_last)])
    if best_step is not None and best_step in ordered:
        kept.add(best_step)
    return kept


def best_step(session: Session, job_id: str) -> int | None:
    """The best step as the newest checkpoint event of the job names it."""
    data = session.scalar(
        select(JobEvent.data)
        .where(JobEvent.job_id == job_id, JobEvent.kind == "checkpoint")
        .order_by(JobEvent.id.desc())
        .limit(1)
    )
    value = (data or {}).get("best_step")
    return value if isinstance(value, int) else None


def prune_checkpoints(session: Session, store: ObjectStore, job_id: str, keep_last: int) -> int:
    """Delete the recorded checkpoints that retention does not keep; objects deleted."""
    rows = list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)))
    keep = kept_steps((r.step for r in rows), keep_last, best_step(session, job_id))
    deleted = 0
    for row in rows:
        if row.step not in keep:
            deleted += delete_prefix(session, store, row.prefix)
            session.delete(row)
    session.flush()
    return deleted


def retain_finished(session: Session, store: ObjectStore, job_id: str, keep_last: int) -> int:
    """A finished job: keep what retention keeps, delete everything else under its
    checkpoints prefix, and record it. Objects deleted; the caller commits."""
    job = session.get(Job, job_id)
    if job is None:
        return 0
    deleted = prune_checkpoints(session, store, job_id, keep_last)
    rows = session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id))
    kept = {row.step: row.prefix for row in rows}
    base = checkpoints_prefix(job.team_id, job_id)
    keys = {info.key for info in store.list(base)}
    keys.update(
        session.scalars(
            select(StoredObject.key).where(StoredObject.key.startswith(base, autoescape=True))
        )
    )
    # Each step directory is one upload: delete the directories no kept checkpoint owns.
    directories = {base + key[len(base) :].split("/", 1)[0] + "/" for key in keys}
    for directory in sorted(directories - set(kept.values())):
        deleted += delete_prefix(session, store, directory)
    record_event(
        session, job_id, RETAINED, data={"kept_steps": sorted(kept), "objects_deleted": deleted}
    )
    return deleted


def unretained_jobs(session: Session, states: Iterable[str], limit: int) -> list[str]:
    """Finished training jobs (ended in one of ``states``) whose retention has not run."""
    done = select(JobEvent.id).where(JobEvent.job_id == Job.id, JobEvent.kind == RETAINED)
    return list(
        session.scalars(
            select(Job.id)
            .where(
                Job.state.in_(list(states)),
                Job.type == "finetune",
                Job.started_at.is_not(None),
                ~done.exists(),
            )
            .order_by(Job.finished_at)
            .limit(limit)
        )
    )
