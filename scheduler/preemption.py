"""Which running jobs yield for waiting ones that outrank them, choosing the victims
that lose the least work."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from scheduler.fair_share import share
from scheduler.plan_data import PendingJob, Policy, Preemption, RunningJob, TeamState
from scheduler.slot_pool import SlotPool


def preempt(
    claimants: list[PendingJob],
    running: Sequence[RunningJob],
    teams: dict[str, TeamState],
    allocation: dict[str, int],
    pool: SlotPool,
    now: float,
    policy: Policy,
) -> list[Preemption]:
    """Ask the cheapest victims to yield for waiting jobs that outrank them."""
    chosen: list[Preemption] = []
    taken: set[str] = set()
    # GPUs each team holds beyond its quota: what others may reclaim from it.
    excess = {
        team: allocation.get(team, 0) - state.max_gpus
        for team, state in teams.items()
        if state.max_gpus is not None
    }
    # Slots already being given back count as free for the jobs that asked for them.
    incoming: dict[str, int] = defaultdict(int)
    on_worker: dict[str, list[RunningJob]] = defaultdict(list)
    for job in running:
        if job.yielding:
            incoming[job.worker] += job.slots
        else:
            on_worker[job.worker].append(job)
    # Cheapest first: least work lost; on a tie, the job admitted as borrowing.
    for jobs in on_worker.values():
        jobs.sort(key=lambda r: (now - r.last_checkpoint_at, not r.borrowed))
    # Whether a job finds victims depends only on its team, priority and size until a
    # victim is picked: at a deep queue most searches repeat a failed one.
    failed: set[tuple[str, int, int]] = set()
    for waiting in claimants:
        if len(chosen) >= policy.max_preemptions_per_pass:
            break
        kind = (waiting.team, waiting.priority, waiting.slots)
        if kind in failed:
            continue
        best = _cheapest_victims(
            waiting, on_worker, taken, incoming, pool, teams, allocation, excess, now
        )
        if best is None:
            failed.add(kind)
            continue
        failed.clear()
        worker, picked = best
        for victim in picked:
            taken.add(victim.id)
            incoming[worker] += victim.slots
            borrowing = victim.priority >= waiting.priority
            if borrowing:
                excess[victim.team] -= victim.slots
            code = "quota" if borrowing else "priority"
            chosen.append(Preemption(victim.id, waiting.id, waiting.team, waiting.priority, code))
    return chosen


def _cheapest_victims(
    waiting: PendingJob,
    on_worker: dict[str, list[RunningJob]],
    taken: set[str],
    incoming: dict[str, int],
    pool: SlotPool,
    teams: dict[str, TeamState],
    allocation: dict[str, int],
    excess: dict[str, int],
    now: float,
) -> tuple[str, list[RunningJob]] | None:
    """The worker, and its victims, where the job starts losing the least work."""
    best: tuple[float, str, list[RunningJob]] | None = None
    for worker in pool.workers:
        have = pool.free_now(worker) + incoming[worker]
        if have >= waiting.slots:
            return None  # capacity is already on its way: wait for it
        picked: list[RunningJob] = []
        for victim in on_worker.get(worker, ()):
            if have >= waiting.slots:
                break
            if victim.id in taken or not _outranks(waiting, victim, teams, allocation, excess):
                continue
            picked.append(victim)
            have += victim.slots
        if have >= waiting.slots:
            lost = sum((now - v.last_checkpoint_at) * v.slots for v in picked)
            if best is None or lost < best[0]:
                best = (lost, worker, picked)
    return (best[1], best[2]) if best else None


def _outranks(
    waiting: PendingJob,
    victim: RunningJob,
    teams: dict[str, TeamState],
    allocation: dict[str, int],
    excess: dict[str, int],
) -> bool:
    """Lower priority always yields; at equal priority, a team within its quota reclaims
    GPUs from another team while that team holds more than its quota.

    A team short of its quota whose next job would take it over (a 2- or 4-GPU job when
    it holds 7 of 8) reclaims too, but only where that is fairer: its share with the job
    stays at most the victim team's share without the victim (Kueue's
    LessThanOrEqualToFinalShare), so the two teams cannot take GPUs back and forth.
    """
    if waiting.priority > victim.priority:
        return True
    if waiting.priority < victim.priority or victim.team == waiting.team:
        return False
    if excess.get(victim.team, 0) <= 0:
        return False
    team = teams.get(waiting.team) or TeamState(waiting.team)
    if team.max_gpus is None:
        return True
    held = allocation[waiting.team]
    if held + waiting.slots <= team.max_gpus:
        return True
    if held >= team.max_gpus:
        return False
    owner = teams[victim.team]
    if owner.max_gpus is None:  # (never: only a team with a quota has an excess)
        return False
    victim_left = owner.max_gpus + excess[victim.team] - victim.slots
    return share(team, held + waiting.slots) <= share(owner, victim_left)
