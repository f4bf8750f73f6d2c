"""The admission plan: a plain function over plain data (DESIGN §4).

Who runs next is decided here, with no SQL and no broker, so the same code is
unit-tested, driven by the pool simulation in ``bench/pool_sim.py``, and run by
the admission pass. In order (each step's module in brackets):

1. Order (``scheduler.fair_share``): priority class first (held to the team's
   ``max_priority``, whatever the job's type or creator); within a class, teams take
   turns by fair share (current allocation plus decayed past usage, over weight);
   within a team, oldest first. Jobs that waited past ``starvation_s`` move up one
   class (aging).
2. Quotas (``scheduler.quotas``): a job that would take its team over ``max_gpus``
   waits with ``quota``, unless the team may borrow: then it gets only GPUs that no job
   within quota can use in this pass, and it is marked as borrowing (first to be
   preempted). One exception: a team that may borrow, holds less than its quota and is
   furthest below its weighted share of all teams with waiting jobs starts its next job
   as if within quota even where that job takes it over (a 4-GPU job at 6 of 8), as
   YARN's capacity scheduler checks a queue's usage before the container it assigns,
   not after. Otherwise a team whose jobs come in 2s and 4s sits below its quota and
   never above it, short of its weighted share for as long as others keep the pool busy.
3. Placement (``scheduler.slot_pool``): best fit on one worker (fewest free slots that
   suffice), specific GPU indices chosen for CUDA_VISIBLE_DEVICES. A job back from a
   worker (lease expired, never claimed) goes to another one where one has room.
4. Backfill (EASY, ``scheduler.backfill``): the first job that cannot start gets a
   reservation at its earliest start; later jobs start now only where they do not delay
   it. Among the borrowers, the first waiting job of each team still short of its quota
   (a 4-GPU job of a team holding 7 of 8) gets one too, so other teams' borrowers cannot
   keep it out by taking each GPU as it frees up.
5. Preemption (``scheduler.preemption``): a waiting job may ask lower-priority or
   borrowing jobs to yield; the victims chosen are those that lose the least work
   (newest checkpoint). A team short of its quota reclaims borrowed GPUs for such a job
   too, where that is fairer.
6. Every job left waiting gets a reason code, its position and an estimated start
   (``scheduler.wait_reasons``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from scheduler.backfill import Reservation, pick, reserve
from scheduler.fair_share import capped, fair_order
from scheduler.plan_data import (
    DEFAULT_RUNTIME_S,
    PRIORITIES,
    AdmissionPlan,
    PendingJob,
    Placement,
    Policy,
    Preemption,
    RunningJob,
    TeamState,
    Wait,
    WorkerCapacity,
)
from scheduler.preemption import preempt
from scheduler.quotas import FurthestBelow, may_cross_quota, short_of_quota
from scheduler.slot_pool import SlotPool
from scheduler.wait_reasons import explain, quota_text

# The planner's public names, as callers have always imported them from here.
__all__ = [
    "DEFAULT_RUNTIME_S",
    "PRIORITIES",
    "AdmissionPlan",
    "PendingJob",
    "Placement",
    "Policy",
    "Preemption",
    "RunningJob",
    "TeamState",
    "Wait",
    "WorkerCapacity",
    "fair_order",
    "plan",
]


def plan(
    jobs: Sequence[PendingJob],
    running: Sequence[RunningJob],
    teams: dict[str, TeamState],
    workers: Sequence[WorkerCapacity],
    now: float,
    policy: Policy | None = None,
) -> AdmissionPlan:
    policy = policy or Policy()
    result = AdmissionPlan()
    jobs, running = capped(jobs, teams), capped(running, teams)
    pool = SlotPool(workers, running, now)
    allocation: dict[str, int] = defaultdict(int)
    # A team's allocation counts every GPU it holds: whether it borrows is a property of
    # its usage against its quota now (as in Kueue), not of how a job was first admitted.
    for held in running:
        allocation[held.team] += held.slots
    ordered = fair_order(jobs, teams, allocation, now, policy)

    blocked: list[PendingJob] = []
    borrowers: list[PendingJob] = []
    reservations: list[Reservation] = []
    # Kept at hand (and the defaults of unknown teams built once): the loop below runs once
    # per pending job.
    states = {job.team: TeamState(job.team) for job in jobs if job.team not in teams} | teams
    max_free = pool.max_free()
    furthest_below = FurthestBelow(jobs, states, allocation)
    for job in ordered:
        team = states[job.team]
        if team.held or team.budget_spent:
            result.waits[job.id] = Wait("quota", quota_text(team), 0, None)
            continue
        if job.slots > pool.largest:
            text = (
                f"needs {job.slots} slots on one worker; the largest live worker has {pool.largest}"
                if workers
                # Admission passes only workers that beat lately (scheduler.admission).
                else "no worker is available (none registered, or none sent a heartbeat lately)"
            )
            result.waits[job.id] = Wait("no_free_gpu", text, 0, None)
            continue
        if (
            team.max_gpus is not None
            and allocation[job.team] + job.slots > team.max_gpus
            and not may_cross_quota(job, team, allocation, furthest_below)
        ):
            if team.can_borrow:
                borrowers.append(job)
            else:
                result.waits[job.id] = Wait(
                    "quota", f"team {job.team} is at its quota of {team.max_gpus} GPUs", 0, None
                )
            continue
        worker = pick(pool, job, reservations, now) if job.slots <= max_free else None
        if worker is None:
            blocked.append(job)
            if not reservations:
                reserve(pool, job, reservations)
            continue
        indices = pool.take(worker, job.slots, now + job.estimated_runtime_s)
        max_free = pool.max_free()
        allocation[job.team] += job.slots
        furthest_below.changed()
        result.placements.append(
            Placement(job.id, worker, pool.workers[worker].queue, indices, False, job.kind)
        )

    # Borrowing: idle GPUs beyond quota, only where no job within quota is waiting for them.
    short = short_of_quota(teams, allocation)
    claimants = list(blocked)
    for job in borrowers:
        worker = pick(pool, job, reservations, now) if job.slots <= pool.max_free() else None
        if worker is None:
            team = teams[job.team]
            if job.team in short:
                # Its team holds less than its quota, but this job would take it over (a
                # multi-GPU job): it claims borrowed GPUs back (scheduler.preemption), and the
                # other teams' borrowers may not starve it (as for EASY's first job).
                claimants.append(job)
                if all(r[0].team != job.team for r in reservations):
                    reserve(pool, job, reservations)
            result.waits[job.id] = Wait(
                "quota",
                f"team {job.team} is at its quota of {team.max_gpus} GPUs "
                "(it may borrow idle GPUs, but none are idle)",
                0,
                None,
            )
            continue
        indices = pool.take(worker, job.slots, now + job.estimated_runtime_s)
        result.placements.append(
            Placement(job.id, worker, pool.workers[worker].queue, indices, True, job.kind)
        )

    if policy.preemption:
        result.preemptions = preempt(claimants, running, teams, allocation, pool, now, policy)
    explain(ordered, result, pool, now)
    return result
