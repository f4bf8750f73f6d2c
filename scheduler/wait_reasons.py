"""Why each job left waiting waits: a reason code and text, its position in the order,
and its estimated start."""

from __future__ import annotations

from functools import cache

from scheduler.plan_data import AdmissionPlan, PendingJob, TeamState, Wait
from scheduler.slot_pool import SlotPool


def explain(
    ordered: list[PendingJob],
    result: AdmissionPlan,
    pool: SlotPool,
    now: float,
) -> None:
    """Reason, position and estimated start for every job left waiting."""
    placed = {p.job_id for p in result.placements}
    preempting_for = {p.for_job_id for p in result.preemptions}
    position = 0
    ahead = _Ahead()
    # Local names: this loop runs once per waiting job; a Wait is built with tuple.__new__,
    # as NamedTuple's own __new__ is a Python call per job.
    waits, book_earliest, add, why = result.waits, pool.book_earliest, ahead.add, ahead.why
    new_wait = tuple.__new__
    for job in ordered:
        job_id = job.id
        if job_id in placed:
            add(job)
            continue
        position += 1
        wait = waits.get(job_id)
        if wait is not None:
            code, text = _PREEMPTING_FOR if job_id in preempting_for else wait[:2]
            waits[job_id] = new_wait(Wait, (code, text, position, wait.estimated_start))
            continue
        # Neither placed nor told why it waits: blocked, waiting for capacity.
        estimated = book_earliest(job.slots, job.estimated_runtime_s)
        code, text = _PREEMPTING_FOR if job_id in preempting_for else why(job)
        waits[job_id] = new_wait(Wait, (code, text, position, estimated))
        add(job)


_PREEMPTING_FOR = (
    "priority",
    "lower-priority or borrowing jobs are checkpointing to make room for it",
)
_FAIR_SHARE = ("fair_share", "teams below their fair share of the pool go first")
_WORKER_LOST = (
    "worker_lost",
    "its worker was lost; waiting for free slots to resume elsewhere",
)


class _Ahead:
    """What is ahead of a job in the order, kept as running aggregates (not a list to scan):
    the highest priority, and whether more than one team (or which one team) is there."""

    def __init__(self) -> None:
        self.top_priority = -1
        self.team: str | None = None
        self.teams_differ = False

    def add(self, job: PendingJob) -> None:
        if job.priority > self.top_priority:
            self.top_priority = job.priority
        if self.team is None:
            self.team = job.team
        elif job.team != self.team:
            self.teams_differ = True

    def why(self, job: PendingJob) -> tuple[str, str]:
        """The reason code and text for a job that waits for capacity behind these."""
        if self.top_priority > job.priority:
            return _behind_priority(job.slots)
        if self.teams_differ or (self.team is not None and self.team != job.team):
            return _FAIR_SHARE
        if job.previous_reason == "worker_lost":
            return _WORKER_LOST
        return _no_free_gpu(job.slots)


# Cached: the texts depend only on the job size, and a deep queue's jobs share a few sizes.
@cache
def _behind_priority(slots: int) -> tuple[str, str]:
    return "priority", f"higher-priority jobs come first; needs {slots} free slot(s)"


@cache
def _no_free_gpu(slots: int) -> tuple[str, str]:
    return "no_free_gpu", f"waiting for {slots} free slot(s) on one worker"


def quota_text(team: TeamState) -> str:
    """Why a team's jobs wait whatever the pool holds: its queue is held, or its budget spent."""
    if team.held:
        return f"team {team.id}'s queue is held by an administrator"
    return f"team {team.id} has spent its GPU-hour budget for this period"
