"""The job state machine: the one owner of ``jobs.state``.

API, worker and scheduler all change a job's state through :func:`transition`.
Each transition is a compare-and-set UPDATE (so two processes can never both
move the same job) and writes a JobEvent in the same transaction.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, defer

from storage.db import insert_named, named, write_core
from storage.models import Job, JobEvent, table_of


class JobState(enum.StrEnum):
    VALIDATING = "validating"  # spec accepted for checking, not yet admissible
    PENDING = "pending"  # waiting for admission; carries a reason, position and estimate
    QUEUED = "queued"  # admitted, placed on a worker, message published
    RUNNING = "running"  # claimed by exactly one runner under a lease
    CANCELLING = "cancelling"  # asked to stop; the runner checkpoints and exits
    PREEMPTING = "preempting"  # asked to yield its slots; returns to pending
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = JobState

TERMINAL: frozenset[JobState] = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED})
# States in which a job holds slots on a worker.
HOLDING_SLOTS: frozenset[JobState] = frozenset({S.QUEUED, S.RUNNING, S.CANCELLING, S.PREEMPTING})
LEASED: frozenset[JobState] = frozenset({S.RUNNING, S.CANCELLING, S.PREEMPTING})

ALLOWED: Mapping[JobState, frozenset[JobState]] = {
    S.VALIDATING: frozenset({S.PENDING, S.FAILED, S.CANCELLED}),
    S.PENDING: frozenset({S.QUEUED, S.CANCELLED, S.FAILED}),
    # queued -> pending: never claimed in time (worker gone); the admission pass re-places it.
    S.QUEUED: frozenset({S.RUNNING, S.PENDING, S.CANCELLED, S.FAILED}),
    # running -> pending: lease expired or worker lost; resumes from its newest checkpoint.
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLING, S.PREEMPTING, S.PENDING}),
    # A runner that finishes before it sees the request still records its real outcome.
    S.CANCELLING: frozenset({S.CANCELLED, S.SUCCEEDED, S.FAILED}),
    S.PREEMPTING: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED, S.CANCELLING}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, job_id: str, old: str, new: str) -> None:
        super().__init__(f"job {job_id}: illegal transition {old} -> {new}")
        self.job_id, self.old, self.new = job_id, old, new


def can_move(old: JobState | str, new: JobState | str) -> bool:
    return JobState(new) in ALLOWED[JobState(old)]


# Events are only ever appended and read back by queries, never held as objects: a plain
# INSERT built once costs a fraction of the unit of work's flush of a JobEvent, and it has
# no RETURNING of the new id, which nobody reads (a third of the statement's client CPU).
_INSERT_EVENT = insert_named(table_of(JobEvent), "event")


def record_event(
    session: Session,
    job_id: str,
    kind: str,
    *,
    old: str | None = None,
    new: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    if session.new:
        # A job added in this session is written now, before its event (the event's
        # foreign key), also when the event is held (storage.db.held_writes).
        session.flush()
    row = event_row(job_id, kind, old, new, reason, data)
    write_core(session, _INSERT_EVENT, named("event", row))


def event_row(
    job_id: str,
    kind: str,
    old: str | None = None,
    new: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A job event's column values, for :func:`record_event`'s INSERT."""
    return {
        "job_id": job_id,
        "at": time.time(),
        "kind": kind,
        "old_state": old,
        "new_state": new,
        "reason": reason,
        "data": data or {},
    }


def transition(
    session: Session,
    job_id: str,
    new: JobState,
    *,
    reason: str,
    expect: Iterable[JobState] | None = None,
    lease_owner: str | None = None,
    values: Mapping[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    current: Job | None = None,
) -> bool:
    """Move a job to ``new`` and record why.

    ``expect`` makes this a compare-and-set: if the job is in none of those states,
    nothing changes and False is returned (a duplicate delivery, a lost race).
    Without ``expect`` the job's current state must allow the move, else
    IllegalTransition. ``lease_owner`` additionally requires that this runner
    still holds the lease. A move the table forbids always raises.

    ``current``: the job as the caller has just read it (``populate_existing``), to
    spare reading it again. On success the job in the session holds the row as the
    UPDATE left it (RETURNING, not a second SELECT).
    """
    if current is None:
        current = session.get(Job, job_id, populate_existing=True)
    if current is None:
        raise LookupError(f"job {job_id} does not exist")
    old = JobState(current.state)
    if expect is not None and old not in set(expect):
        return False
    if not can_move(old, new):
        raise IllegalTransition(job_id, old.value, new.value)
    conditions = [Job.id == job_id, Job.state == old.value]
    if lease_owner is not None:
        conditions.append(Job.lease_owner == lease_owner)
    changes: dict[str, Any] = {"state": new.value, **(values or {})}
    now = time.time()
    if new in TERMINAL:
        changes.setdefault("finished_at", now)
        changes.setdefault("lease_owner", None)
        changes.setdefault("lease_until", None)
        changes.setdefault("reason_code", None)
    # The compare-and-set and the new row in one statement: RETURNING refreshes the
    # session's copy of the job, which a refresh() afterwards did with another SELECT.
    moved = session.scalars(
        update(Job)
        .where(*conditions)
        .values(**changes)
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one_or_none()
    if moved is None:
        return False
    record_event(session, job_id, "state", old=old.value, new=new.value, reason=reason, data=data)
    session.flush()
    return True


UNREADABLE = "unreadable_spec"


def set_aside(session: Session, job_id: str, problem: str, spec: dict[str, Any]) -> bool:
    """Fail a pending job whose row a pass cannot read, so the pass goes on for the rest.

    ``spec`` replaces the unreadable one (what could be kept of it, in strict JSON); the
    job's reason and error name ``problem``, and ``reason_code`` marks it for the alert.
    The job is read without its spec: that column is what cannot be read.
    """
    current = session.get(Job, job_id, options=[defer(Job.spec)], populate_existing=True)
    message = f"set aside by the scheduler: {problem}"
    return transition(
        session,
        job_id,
        S.FAILED,
        reason=message,
        expect={S.PENDING},
        values={"spec": spec, "error": message, "reason_code": UNREADABLE, "reason": message},
        current=current,
    )
