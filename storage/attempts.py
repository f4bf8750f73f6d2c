"""How one attempt at running a job stops and ends: the words runner, engine, lease keeper
and SQL record (``job_runs.outcome``) share. Plain enums, no SQL, so that the training
engines can import them too; the values are the strings already stored.
"""

from __future__ import annotations

import enum


class StopReason(enum.StrEnum):
    """Why a running engine must checkpoint and return at its next safe point."""

    CANCEL = "cancel"  # the job is cancelling
    PREEMPT = "preempt"  # the job is preempting: give its slots back, resume later
    SHUTDOWN = "shutdown"  # the worker got SIGTERM: give the job back (worker.shutdown)
    LEASE_LOST = "lease_lost"  # another runner or the reaper has the job: record nothing


class AttemptOutcome(enum.StrEnum):
    """What came of one attempt: what a runner returns, and (all but ``not_claimed`` and
    ``lease_lost``, which leave the record to whoever holds the job) ``job_runs.outcome``,
    written only by ``storage.lease.end_run``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    SHUTDOWN = "shutdown"  # given back on a warm shutdown; resumes elsewhere
    LEASE_LOST = "lease_lost"  # the runner lost its lease and stopped
    NOT_CLAIMED = "not_claimed"  # a duplicate delivery, or the job had moved on
    LEASE_EXPIRED = "lease_expired"  # the reaper took the job back from a silent runner
    WORKER_LOST = "worker_lost"  # the pool took it back from a worker that stopped beating


# An attempt that ended the job (the others hand it on or leave it to its new holder).
ENDED: frozenset[AttemptOutcome] = frozenset(
    {AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED, AttemptOutcome.CANCELLED}
)
# Runs that another party ended by taking the job back.
TAKEN: frozenset[AttemptOutcome] = frozenset(
    {AttemptOutcome.LEASE_EXPIRED, AttemptOutcome.WORKER_LOST}
)
