"""The admission plan's plain data: what goes in (waiting and running jobs, teams,
workers, the policy) and what comes out (placements, waits, preemptions).

Plain dataclasses with no SQL: the admission pass builds them from rows, the pool
simulation (``bench/pool_sim.py``) and the unit tests build them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

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
    # Measured seconds from admission to a job's first step here (tunepool.startup_times).
    startup_s: float = 0.0

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
    builds one per waiting job)."""

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
