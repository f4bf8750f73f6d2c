"""The admission plan: a plain function over plain data (DESIGN §4).

Who runs next is decided here, with no SQL and no broker, so the same code is
unit-tested, driven by the pool simulation in ``bench/pool_sim.py``, and run by
the admission pass. In order:

1. Order: priority class first (held to the team's ``max_priority``, whatever the job's
   type or creator); within a class, teams take turns by fair share
   (current allocation plus decayed past usage, over weight); within a team, oldest
   first. Jobs that waited past ``starvation_s`` move up one class (aging).
2. Quotas: a job that would take its team over ``max_gpus`` waits with ``quota``,
   unless the team may borrow: then it gets only GPUs that no job within quota can
   use in this pass, and it is marked as borrowing (first to be preempted). One
   exception: a team that may borrow, holds less than its quota and is furthest below
   its weighted share of all teams with waiting jobs starts its next job as if within
   quota even where that job takes it over (a 4-GPU job at 6 of 8), as YARN's capacity
   scheduler checks a queue's usage before the container it assigns, not after.
   Otherwise a team whose jobs come in 2s and 4s sits below its quota and never above
   it, short of its weighted share for as long as others keep the pool busy.
3. Placement: best fit on one worker (fewest free slots that suffice), specific GPU
   indices chosen for CUDA_VISIBLE_DEVICES. A job back from a worker (lease expired,
   never claimed) goes to another one where one has room.
4. Backfill (EASY): the first job that cannot start gets a reservation at its
   earliest start; later jobs start now only where they do not delay it. Among the
   borrowers, the first waiting job of each team still short of its quota (a 4-GPU
   job of a team holding 7 of 8) gets one too, so other teams' borrowers cannot keep
   it out by taking each GPU as it frees up.
5. Preemption: a waiting job may ask lower-priority or borrowing jobs to yield; the
   victims chosen are those that lose the least work (newest checkpoint). A team short
   of its quota reclaims borrowed GPUs for such a job too, where that is fairer.
6. Every job left waiting gets a reason code, its position and an estimated start.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from itertools import accumulate
from operator import attrgetter
from typing import NamedTuple, TypeVar

from storage.priorities import PRIORITIES

_PRIORITY_NAMES = {value: name for name, value in PRIORITIES.items()}
DEFAULT_RUNTIME_S = 600.0


@dataclass(frozen=True)
class PendingJob:
    id: str
    team: str
    priority: int
    slots: int
    created_at: float
    estimated_runtime_s: float = DEFAULT_RUNTIME_S
    kind: str = "finetune"
    previous_reason: str | None = None
    # The worker it came back from without finishing (its lease expired there, or it was
    # never claimed): placed elsewhere where capacity exists, as that worker may still be
    # frozen, or a hung process of the job may still hold the slot.
    avoid_worker: str | None = None


@dataclass(frozen=True)
class RunningJob:
    """A job that holds slots (queued, running, or yielding them)."""

    id: str
    team: str
    priority: int
    slots: int
    worker: str
    gpu_indices: tuple[int, ...]
    estimated_end: float
    borrowed: bool = False
    # When its newest checkpoint was written (or it started): what a preemption loses.
    last_checkpoint_at: float = 0.0
    yielding: bool = False  # already preempting or cancelling


@dataclass(frozen=True)
class TeamState:
    id: str
    weight: float = 1.0
    max_gpus: int | None = None
    can_borrow: bool = True
    # Decayed past usage, in GPUs averaged over the decay window (see scheduler.usage).
    usage: float = 0.0
    budget_spent: bool = False
    held: bool = False
    # The highest class the team may use (its ``max_priority``): a job asking for more,
    # whatever its type or whoever created it, is ordered and preempts at this class.
    max_priority: int = PRIORITIES["high"]


@dataclass(frozen=True)
class WorkerCapacity:
    name: str
    queue: str
    slots: int
    gpu_indices: tuple[int, ...] = ()

    def indices(self) -> tuple[int, ...]:
        return self.gpu_indices or tuple(range(self.slots))


@dataclass(frozen=True)
class Placement:
    job_id: str
    worker: str
    queue: str
    gpu_indices: tuple[int, ...]
    borrowed: bool = False
    kind: str = "finetune"


class Wait(NamedTuple):
    """Why a job waits, its place in the order, and when it should start (a tuple: the pass
    builds one per waiting job, 10,000 of them in the benchmark)."""

    reason_code: str
    reason: str
    position: int
    estimated_start: float | None


@dataclass(frozen=True)
class Preemption:
    """A running job asked to yield for a waiting one, and why: ``code`` is ``priority``
    (the victim has lower priority) or ``quota`` (its team holds GPUs beyond its quota)."""

    victim_id: str
    for_job_id: str
    for_team: str
    for_priority: int
    code: str

    def describe(self, team: str | None = None) -> str:
        """The victim's event text: which job it yields to, that job's priority and team
        (``team``: its name where the caller knows it), and why."""
        why = (
            "its team holds GPUs beyond its quota"
            if self.code == "quota"
            else "it has lower priority"
        )
        return (
            f"preempted for {self.for_job_id} (priority {_PRIORITY_NAMES[self.for_priority]}, "
            f"team {team or self.for_team}): {why}"
        )

    @property
    def reason(self) -> str:
        return self.describe()


@dataclass
class AdmissionPlan:
    placements: list[Placement] = field(default_factory=list)
    waits: dict[str, Wait] = field(default_factory=dict)
    preemptions: list[Preemption] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    starvation_s: float = 3600.0
    max_preemptions_per_pass: int = 4
    preemption: bool = True


def fair_order(
    jobs: Sequence[PendingJob],
    teams: dict[str, TeamState],
    allocation: dict[str, int],
    now: float,
    policy: Policy,
) -> list[PendingJob]:
    """Priority class, then teams in turn by (allocation + usage) / weight, then age.

    The virtual allocation grows as each job is ordered, so a team with a burst of
    jobs gets its turn again only after the others caught up to their weights.
    """
    top = max(PRIORITIES.values())
    by_class: dict[int, dict[str, list[PendingJob]]] = {}
    starvation_s = policy.starvation_s
    for job in jobs:
        aged = job.priority + 1 if now - job.created_at >= starvation_s else job.priority
        if aged > top:
            aged = top
        by_class.setdefault(aged, {}).setdefault(job.team, []).append(job)
    ordered: list[PendingJob] = []
    virtual = dict(allocation)
    for priority in sorted(by_class, reverse=True):
        ordered.extend(_turns(by_class[priority], teams, virtual))
    return ordered


def _turns(
    queues: dict[str, list[PendingJob]], teams: dict[str, TeamState], virtual: dict[str, int]
) -> list[PendingJob]:
    """One class's jobs with the teams taking turns; ``virtual`` grows by what is ordered.

    Taking turns is a merge of the teams' queues by (share when the job's turn comes,
    age, team): each team's keys only grow along its queue, so one sort of all keys gives
    exactly the merge, without a heap operation per job (10,000 in the benchmark).
    """
    keys: list[tuple[float, float, str, int]] = []
    members: list[PendingJob] = []
    for team, team_jobs in queues.items():
        team_jobs.sort(key=_oldest_first)
        state = teams.get(team)
        usage, weight = (state.usage, max(state.weight, 1e-9)) if state else (0.0, 1.0)
        held = list(accumulate([j.slots for j in team_jobs], initial=virtual.get(team, 0)))
        virtual[team] = held.pop()
        # The last field keeps a team's own jobs in their order should all else tie.
        base = len(keys)
        keys.extend(
            [
                ((h + usage) / weight, j.created_at, team, base + i)
                for i, (h, j) in enumerate(zip(held, team_jobs, strict=True))
            ]
        )
        members.extend(team_jobs)
    return [members[k[3]] for k in sorted(keys)]


_oldest_first = attrgetter("created_at", "id")


class _Pool:
    """Per worker: free GPU indices now, and when each slot is expected to be free.

    ``times[w]`` holds one entry per slot, sorted: the time that slot frees up
    (``now`` or earlier when it is free). "k slots free at t" is then simply
    ``times[w][k - 1] <= t``, which keeps estimates for 10,000 jobs cheap.
    """

    def __init__(
        self, workers: Sequence[WorkerCapacity], running: Sequence[RunningJob], now: float
    ) -> None:
        self.now = now
        self.workers = {w.name: w for w in workers}
        self.indices: dict[str, list[int]] = {w.name: list(w.indices()) for w in workers}
        busy: dict[str, list[float]] = {w.name: [] for w in workers}
        for job in running:
            if job.worker not in self.indices:
                continue
            free = self.indices[job.worker]
            for index in job.gpu_indices:
                if index in free:
                    free.remove(index)
            # Jobs without known indices still hold their count of slots.
            for _ in range(job.slots - len(job.gpu_indices)):
                if free:
                    free.pop()
            busy[job.worker].extend([max(job.estimated_end, now + 1.0)] * job.slots)
        self.times: dict[str, list[float]] = {}
        for w in workers:
            taken = busy[w.name][: w.slots]
            self.times[w.name] = sorted([now] * (w.slots - len(taken)) + taken)
        self.largest = max((w.slots for w in workers), default=0)
        self._max_free: int | None = None
        # For each job size k, a heap of (time the worker has k slots free, worker): the
        # estimate for 10,000 waiting jobs then costs a heap lookup each, not a scan of the
        # pool. Bookings mostly move times later, so the heaps are refreshed lazily: an
        # entry may hold an earlier time than its worker's (a lower bound), and only the
        # entry on top is checked and, if stale, refreshed (see ``earliest``).
        self._by_size: dict[int, list[tuple[float, str]]] = {}

    def free_now(self, worker: str) -> int:
        return len(self.indices[worker])

    def max_free(self) -> int:
        if self._max_free is None:
            self._max_free = max((len(f) for f in self.indices.values()), default=0)
        return self._max_free

    def best_fit(self, slots: int, avoid: str | None = None) -> str | None:
        best: tuple[int, str] | None = None
        for name, free in self.indices.items():
            if name == avoid:
                continue
            if len(free) >= slots and (best is None or (len(free), name) < best):
                best = (len(free), name)
        return best[1] if best else None

    def take(self, worker: str, slots: int, end: float) -> tuple[int, ...]:
        free = sorted(self.indices[worker])
        taken, self.indices[worker] = tuple(free[:slots]), free[slots:]
        self._max_free = None
        self.book(worker, slots, end)
        return taken

    def book(self, worker: str, slots: int, end: float) -> None:
        """The earliest-free ``slots`` slots are busy until ``end``."""
        times = self.times[worker]
        moved_earlier = end < times[slots - 1]
        old = times[:] if moved_earlier else times
        del times[:slots]
        times.extend([end] * slots)
        times.sort()
        if not moved_earlier:
            # Every k-th free time stayed or moved later: the heap entries are lower bounds.
            return
        for k, heap in self._by_size.items():
            # A time that moved earlier breaks the lower bound: push the new one.
            if len(times) >= k and times[k - 1] < old[k - 1]:
                heapq.heappush(heap, (times[k - 1], worker))

    def free_at(self, worker: str, at: float) -> int:
        return bisect.bisect_right(self.times[worker], at)

    def earliest(self, slots: int) -> tuple[float, str] | None:
        """When some worker first has ``slots`` free, given expected finish times."""
        top = self._exact_top(slots)
        if top is None:
            return None
        at, name = top
        return (at if at > self.now else self.now), name

    def book_earliest(self, slots: int, runtime: float) -> float | None:
        """Book a job on the worker that first has ``slots`` free; when it starts there.

        Booking it makes the jobs behind it in the order estimated after it. (One call per
        waiting job, 10,000 in the benchmark: hence the inlined ``earliest`` and ``book``.)
        """
        top = self._exact_top(slots)
        if top is None:
            return None
        at, name = top
        start = at if at > self.now else self.now
        end = start + runtime
        times = self.times[name]
        if end < times[slots - 1]:
            self.book(name, slots, end)  # (a negative runtime: times move earlier)
        else:
            del times[:slots]
            times.extend([end] * slots)
            times.sort()
        return start

    def _exact_top(self, slots: int) -> tuple[float, str] | None:
        """The heap entry of the worker that first has ``slots`` free, made exact."""
        heap = self._by_size.get(slots)
        if heap is None:
            heap = self._by_size[slots] = [
                (times[slots - 1], name)
                for name, times in self.times.items()
                if len(times) >= slots
            ]
            heapq.heapify(heap)
        if not heap:
            return None
        times, refresh = self.times, heapq.heapreplace
        # Every other entry is at most its worker's time, so a top entry that is exact is
        # the earliest (ties by worker name, as the entries compare).
        while True:
            top = heap[0]
            exact = times[top[1]][slots - 1]
            if exact == top[0] or exact != exact:  # (a NaN time must not loop forever)
                return top
            refresh(heap, (exact, top[1]))


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
    jobs, running = _capped(jobs, teams), _capped(running, teams)
    pool = _Pool(workers, running, now)
    allocation: dict[str, int] = defaultdict(int)
    # A team's allocation counts every GPU it holds: whether it borrows is a property of
    # its usage against its quota now (as in Kueue), not of how a job was first admitted.
    for held in running:
        allocation[held.team] += held.slots
    ordered = fair_order(jobs, teams, allocation, now, policy)

    blocked: list[PendingJob] = []
    borrowers: list[PendingJob] = []
    reservations: list[_Reservation] = []
    # Kept at hand (and the defaults of unknown teams built once): the loop below runs once
    # per pending job, 10,000 in the benchmark.
    states = {job.team: TeamState(job.team) for job in jobs if job.team not in teams} | teams
    max_free = pool.max_free()
    furthest_below = _FurthestBelow(jobs, states, allocation)
    for job in ordered:
        team = states[job.team]
        if team.held or team.budget_spent:
            result.waits[job.id] = Wait("quota", _quota_text(team), 0, None)
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
            and not _may_cross_quota(job, team, allocation, furthest_below)
        ):
            if team.can_borrow:
                borrowers.append(job)
            else:
                result.waits[job.id] = Wait(
                    "quota", f"team {job.team} is at its quota of {team.max_gpus} GPUs", 0, None
                )
            continue
        worker = _pick(pool, job, reservations, now) if job.slots <= max_free else None
        if worker is None:
            blocked.append(job)
            if not reservations:
                _reserve(pool, job, reservations)
            continue
        indices = pool.take(worker, job.slots, now + job.estimated_runtime_s)
        max_free = pool.max_free()
        allocation[job.team] += job.slots
        furthest_below.changed()
        result.placements.append(
            Placement(job.id, worker, pool.workers[worker].queue, indices, False, job.kind)
        )

    # Borrowing: idle GPUs beyond quota, only where no job within quota is waiting for them.
    short = _short_of_quota(teams, allocation)
    claimants = list(blocked)
    for job in borrowers:
        worker = _pick(pool, job, reservations, now) if job.slots <= pool.max_free() else None
        if worker is None:
            team = teams[job.team]
            if job.team in short:
                # Its team holds less than its quota, but this job would take it over (a
                # multi-GPU job): it claims borrowed GPUs back (see _outranks), and the
                # other teams' borrowers may not starve it (as for EASY's first job).
                claimants.append(job)
                if all(r[0].team != job.team for r in reservations):
                    _reserve(pool, job, reservations)
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
        result.preemptions = _preempt(claimants, running, teams, allocation, pool, now, policy)
    _explain(ordered, result, pool, now)
    return result


_TOP = max(PRIORITIES.values())
_Prioritised = TypeVar("_Prioritised", PendingJob, RunningJob)


def _capped(jobs: Sequence[_Prioritised], teams: dict[str, TeamState]) -> Sequence[_Prioritised]:
    """The jobs with each priority held to its team's ``max_priority``.

    Submission refuses a priority above the cap (scheduler.refusals), but a cap lowered
    later, or a job from any other path, must not outrank or preempt with more than the
    team may use: the admission pass is where every job of every type meets the cap.
    """
    caps = {team: state.max_priority for team, state in teams.items() if state.max_priority < _TOP}
    if not caps:
        return jobs
    return [
        replace(job, priority=caps[job.team])
        if job.team in caps and job.priority > caps[job.team]
        else job
        for job in jobs
    ]


# A waiting job's reservation: its earliest start and the worker it is expected on.
_Reservation = tuple[PendingJob, float, str]


def _reserve(pool: _Pool, job: PendingJob, reservations: list[_Reservation]) -> None:
    start = pool.earliest(job.slots)
    if start is not None:
        reservations.append((job, start[0], start[1]))


def _may_cross_quota(
    job: PendingJob,
    team: TeamState,
    allocation: dict[str, int],
    furthest_below: _FurthestBelow,
) -> bool:
    """Whether a job that takes its team over its quota still counts as within it: the
    team may borrow, holds less than its quota, the job alone fits in the quota, and no
    team with waiting jobs is further below its weighted share."""
    quota = team.max_gpus
    return (
        quota is not None
        and team.can_borrow
        and allocation[job.team] < quota
        and job.slots <= quota
        and furthest_below(team)
    )


class _FurthestBelow:
    """Whether a team's share (as the fair order counts it) is the lowest of the teams
    with waiting jobs that may run (not held, budget not spent). Answers are kept until
    an allocation changes: a deep queue asks once per team, not once per job."""

    def __init__(
        self, jobs: Sequence[PendingJob], teams: dict[str, TeamState], allocation: dict[str, int]
    ) -> None:
        self.jobs, self.teams, self.allocation = jobs, teams, allocation
        self._waiting: list[TeamState] | None = None
        self._answers: dict[str, bool] = {}

    def __call__(self, team: TeamState) -> bool:
        answer = self._answers.get(team.id)
        if answer is None:
            if self._waiting is None:
                states = self.teams
                self._waiting = [
                    state
                    for state in (states[name] for name in {job.team for job in self.jobs})
                    if not (state.held or state.budget_spent)
                ]
            allocation = self.allocation
            mine = _share(team, allocation[team.id])
            answer = all(mine <= _share(o, allocation[o.id]) for o in self._waiting)
            self._answers[team.id] = answer
        return answer

    def changed(self) -> None:
        self._answers.clear()


def _short_of_quota(teams: dict[str, TeamState], allocation: dict[str, int]) -> set[str]:
    """Teams that hold fewer GPUs than their quota (after this pass's placements)."""
    return {
        team
        for team, state in teams.items()
        if state.max_gpus is not None and allocation.get(team, 0) < state.max_gpus
    }


def _quota_text(team: TeamState) -> str:
    if team.held:
        return f"team {team.id}'s queue is held by an administrator"
    return f"team {team.id} has spent its GPU-hour budget for this period"


def _pick(pool: _Pool, job: PendingJob, reservations: list[_Reservation], now: float) -> str | None:
    """The worker the job starts on now (best fit, not delaying any reservation), or None.
    A job that came back from a worker goes elsewhere if it can, there only if not."""
    for avoid in (job.avoid_worker, None) if job.avoid_worker is not None else (None,):
        worker = pool.best_fit(job.slots, avoid)
        if worker is not None and reservations:
            worker = _backfill_worker(pool, job, reservations, now, avoid)
        if worker is not None:
            return worker
    return None


def _backfill_worker(
    pool: _Pool,
    job: PendingJob,
    reservations: list[_Reservation],
    now: float,
    avoid: str | None = None,
) -> str | None:
    """A worker where the job can start now without delaying any reserved job."""
    best: tuple[int, str] | None = None
    for name, free in pool.indices.items():
        if len(free) < job.slots or name == avoid:
            continue
        harmless = all(
            name != reserved_worker
            or now + job.estimated_runtime_s <= start
            or pool.free_at(name, start) - job.slots >= reserved.slots
            for reserved, start, reserved_worker in reservations
        )
        if harmless and (best is None or (len(free), name) < best):
            best = (len(free), name)
    return best[1] if best else None


def _preempt(
    claimants: list[PendingJob],
    running: Sequence[RunningJob],
    teams: dict[str, TeamState],
    allocation: dict[str, int],
    pool: _Pool,
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
    # victim is picked: at a deep queue (10,000 jobs) most searches repeat a failed one.
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
    pool: _Pool,
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
    return _share(team, held + waiting.slots) <= _share(owner, victim_left)


def _share(team: TeamState, held: float) -> float:
    """A team's share as the fair order counts it: GPUs held plus decayed usage, per weight."""
    return (held + team.usage) / max(team.weight, 1e-9)


def _explain(
    ordered: list[PendingJob],
    result: AdmissionPlan,
    pool: _Pool,
    now: float,
) -> None:
    """Reason, position and estimated start for every job left waiting."""
    placed = {p.job_id for p in result.placements}
    preempting_for = {p.for_job_id for p in result.preemptions}
    position = 0
    ahead = _Ahead()
    # Local names: this loop runs once per waiting job (10,000 in the benchmark); a Wait is
    # built with tuple.__new__, as NamedTuple's own __new__ is a Python call per job.
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


# Cached: the texts depend only on the job size, and 10,000 waiting jobs share a few sizes.
@cache
def _behind_priority(slots: int) -> tuple[str, str]:
    return "priority", f"higher-priority jobs come first; needs {slots} free slot(s)"


@cache
def _no_free_gpu(slots: int) -> tuple[str, str]:
    return "no_free_gpu", f"waiting for {slots} free slot(s) on one worker"
