"""What could never be admitted, decided in one place for every way a job is created.

Every creator of a job calls :func:`refusal` before it writes the row, whatever the
job's type: ``POST /v1/jobs`` (fine-tune, inference, compress; the OpenAI fine-tuning
route goes through it), schedules, and the retrain scheduler's ``finetune`` and
``evaluate`` jobs (``scheduler.model_updates``). The API turns a refusal into a 4xx
naming the field and the limit; the retrain scheduler records it on the run. A job
that could never run is refused at once, not left pending for ever (DESIGN §4).
Admission applies the same caps again to what is already queued (a cap lowered after
submission): see ``scheduler.planner`` (``TeamState.max_priority``).

It reads only the team and the pool, so a single job factory can call it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from scheduler.planner import PRIORITIES
from scheduler.pool import largest_worker
from storage.models import Team


@dataclass(frozen=True)
class Refusal:
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
