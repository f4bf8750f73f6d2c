"""What could never be admitted, decided in one place for every way a job is created.

The job factory (``storage.job_factory``) calls :func:`refusal` before it writes a row,
whatever the job's type and whoever creates it (REST, the OpenAI-compatible route,
schedules and retrains); a new schedule is checked against it as well. The API turns a
refusal into a 4xx naming the field and the limit (``api.errors.from_refusal``); the
retrain scheduler records it on the run. A job
that could never run is refused at once, not left pending for ever (DESIGN §4).
Admission applies the same caps again to what is already queued (a cap lowered after
submission): see ``scheduler.planner`` (``TeamState.max_priority``).

It reads only the team and the pool, so it lives in ``storage`` below every creator.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Team, Worker
from storage.priorities import PRIORITIES
from storage.worker_state import WorkerState


@dataclass(frozen=True)
class Refusal:
    """Why a job cannot be created: an error value, turned into a 4xx by the API."""

    status: int
    code: str
    field: str
    message: str
    limit: str | int | None = None


def refusal(session: Session, team_id: str, slots: int, priority: str) -> Refusal | None:
    team = session.get(Team, team_id)
    if team is None:
        return Refusal(404, "not_found", "team", f"team {team_id} not found")
    if team.queue_state == "draining":
        return Refusal(
            409, "draining", "team", f"team {team.name}'s queue is draining: no new jobs"
        )
    if PRIORITIES[priority] > PRIORITIES.get(team.max_priority, PRIORITIES["high"]):
        return Refusal(
            422,
            "invalid",
            "priority",
            f"priority: team {team.name} may ask for at most {team.max_priority}",
            team.max_priority,
        )
    # Every worker offers at least one slot: only a bigger job needs the pool's shape.
    largest = largest_worker(session) if slots > 1 else None
    if largest is not None and slots > largest:
        return Refusal(
            422,
            "invalid",
            "resources.gpus",
            f"resources.gpus: {slots} exceeds the largest worker ({largest} slots); "
            "the job could never run",
            largest,
        )
    if team.max_gpus is not None and slots > team.max_gpus and not team.can_borrow:
        return Refusal(
            422,
            "invalid",
            "resources.gpus",
            f"resources.gpus: {slots} exceeds team {team.name}'s quota of "
            f"{team.max_gpus} GPUs and the team may not borrow",
            team.max_gpus,
        )
    return None


def largest_worker(session: Session) -> int | None:
    """Most slots any live worker offers, or None while no worker has registered."""
    value = session.scalar(
        select(func.max(Worker.slots)).where(Worker.state == WorkerState.ALIVE.value)
    )
    return int(value) if value is not None else None
