"""Refusals at submit time: a job that could never run is a 422 naming the limit, not a
job left pending for ever (DESIGN §4)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import ApiError, invalid
from scheduler.planner import PRIORITIES
from scheduler.pool import largest_worker
from storage.models import Team


def check_admissible(session: Session, team_id: str, slots: int, priority: str) -> None:
    team = session.get(Team, team_id)
    assert team is not None
    if team.queue_state == "draining":
        raise ApiError(
            409, "draining", f"team {team.name}'s queue is draining: no new jobs", "team"
        )
    if PRIORITIES[priority] > PRIORITIES.get(team.max_priority, PRIORITIES["high"]):
        raise invalid(
            "priority",
            f"team {team.name} may ask for at most {team.max_priority}",
            limit=team.max_priority,
        )
    largest = largest_worker(session)
    if largest is not None and slots > largest:
        raise invalid(
            "resources.gpus",
            f"{slots} exceeds the largest worker ({largest} slots); the job could never run",
            limit=largest,
        )
    if team.max_gpus is not None and slots > team.max_gpus and not team.can_borrow:
        raise invalid(
            "resources.gpus",
            f"{slots} exceeds team {team.name}'s quota of {team.max_gpus} GPUs "
            "and the team may not borrow",
            limit=team.max_gpus,
        )
