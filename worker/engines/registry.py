"""Which engine runs a job: one registration per job kind, refused twice loudly.

A kind is a job type (``finetune``, ``inference``, ...) and, where the type's engines
differ by task, the task (``finetune`` + ``causal-lm``). The run envelope looks the
job up here; every job, whatever its kind, runs inside the same envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.engines.context import Engine

# Registered for a type as a whole rather than one task of it.
ANY_TASK = "*"


@dataclass(frozen=True)
class Registration:
    job_type: str
    task: str
    engine: Engine
    # Resumable engines checkpoint: they honour preempt requests and a warm shutdown
    # (the job goes back to pending and resumes). The others run to the end, stopping
    # only for a cancel or a lost lease; a preempt request waits for them to finish.
    resumable: bool = False

    @property
    def kind(self) -> str:
        return self.job_type if self.task == ANY_TASK else f"{self.job_type}/{self.task}"


class UnknownJobKind(LookupError):
    pass


_REGISTRY: dict[tuple[str, str], Registration] = {}


def register(
    job_type: str, engine: Engine, *, tasks: tuple[str, ...] = (ANY_TASK,), resumable: bool = False
) -> None:
    for task in tasks:
        key = (job_type, task)
        if key in _REGISTRY:
            raise ValueError(f"job kind {job_type}/{task} is already registered")
        _REGISTRY[key] = Registration(job_type, task, engine, resumable)


def registration_for(job_type: str, task: str) -> Registration:
    found = _REGISTRY.get((job_type, task)) or _REGISTRY.get((job_type, ANY_TASK))
    if found is None:
        raise UnknownJobKind(f"no engine is registered for {job_type} jobs of task {task!r}")
    return found


def registrations() -> list[Registration]:
    return sorted(_REGISTRY.values(), key=lambda r: (r.job_type, r.task))
