"""The order in which waiting jobs are considered: priority class (held to the team's
cap, raised by aging), then teams in turn by fair share, then age."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import accumulate
from operator import attrgetter
from typing import TypeVar

from scheduler.plan_data import PRIORITIES, PendingJob, Policy, RunningJob, TeamState


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
    exactly the merge, without a heap operation per job.
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


_TOP = max(PRIORITIES.values())
_Prioritised = TypeVar("_Prioritised", PendingJob, RunningJob)


def capped(jobs: Sequence[_Prioritised], teams: dict[str, TeamState]) -> Sequence[_Prioritised]:
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


def share(team: TeamState, held: float) -> float:
    """A team's share as the fair order counts it: GPUs held plus decayed usage, per weight."""
    return (held + team.usage) / max(team.weight, 1e-9)
