"""When a job that takes its team over its quota may still start as if within it, and
which teams hold less than their quota."""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.fair_share import share
from scheduler.plan_data import PendingJob, TeamState


def may_cross_quota(
    job: PendingJob,
    team: TeamState,
    allocation: dict[str, int],
    furthest_below: FurthestBelow,
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


class FurthestBelow:
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
            mine = share(team, allocation[team.id])
            answer = all(mine <= share(o, allocation[o.id]) for o in self._waiting)
            self._answers[team.id] = answer
        return answer

    def changed(self) -> None:
        self._answers.clear()


def short_of_quota(teams: dict[str, TeamState], allocation: dict[str, int]) -> set[str]:
    """Teams that hold fewer GPUs than their quota (after this pass's placements)."""
    return {
        team
        for team, state in teams.items()
        if state.max_gpus is not None and allocation.get(team, 0) < state.max_gpus
    }
