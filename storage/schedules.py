"""Team-defined retrain schedules and their runs (periodic model updates, DESIGN §8).

A ``Schedule`` says when to retrain which model on which data and how to judge the
result; a ``ScheduleRun`` is one firing of it, from the retrain job to the decision.
``(schedule_id, fire_time)`` is unique: the run row is inserted before anything is
submitted, so a second beat or a retried tick that computes the same due time hits
the constraint and does nothing.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.ids import new_id
from storage.models import Base


def _now() -> float:
    return time.time()


class RunState(enum.StrEnum):
    """Where a schedule run is; written only by :func:`move_run`."""

    SUBMITTING = "submitting"  # the row claims the due time; the retrain job is being built
    TRAINING = "training"  # the retrain job runs
    EVALUATING = "evaluating"  # the evaluate job scores candidate and champion
    DECIDED = "decided"  # ``outcome`` says what came of it


class RunOutcome(enum.StrEnum):
    PROMOTED = "promoted"  # the candidate became ``production``
    KEPT = "kept"  # production stays (the candidate lost, or production moved meanwhile)
    FAILED = "failed"  # a job failed or was refused; ``reason`` says which


NEXT: Mapping[RunState, frozenset[RunState]] = {
    RunState.SUBMITTING: frozenset({RunState.TRAINING, RunState.DECIDED}),
    RunState.TRAINING: frozenset({RunState.EVALUATING, RunState.DECIDED}),
    RunState.EVALUATING: frozenset({RunState.DECIDED}),
    RunState.DECIDED: frozenset(),
}


class Schedule(Base):
    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("team_id", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("sch"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    # "cron": fires at each due time of ``cron`` (UTC); "new_dataset": fires once per
    # new version (upload) of ``dataset_name``.
    trigger: Mapped[str] = mapped_column(String(16), default="cron")
    cron: Mapped[str | None] = mapped_column(String(128), nullable=True)
    task: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(128))
    dataset_name: Mapped[str] = mapped_column(String(128))
    # "production": continue from the model's production version (base_model until
    # there is one); "base_model": always start from base_model.
    base: Mapped[str] = mapped_column(String(16), default="production")
    base_model: Mapped[str] = mapped_column(String(512))
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluation_dataset: Mapped[str] = mapped_column(String(40))
    metric: Mapped[str] = mapped_column(String(32))
    min_margin: Mapped[float] = mapped_column(Float, default=0.0)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    gpus: Mapped[int] = mapped_column(default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The newest fire time handled (cron due time or dataset created_at): a cheap skip.
    last_fire_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_by: Mapped[str] = mapped_column(String(160), default="")
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    updated_at: Mapped[float] = mapped_column(Float, default=_now)


class ScheduleRun(Base):
    """One firing: the retrain job, the evaluation, and the decision with both scores."""

    __tablename__ = "schedule_runs"
    __table_args__ = (
        UniqueConstraint("schedule_id", "fire_time"),
        Index("ix_schedule_runs_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("run"))
    schedule_id: Mapped[str] = mapped_column(
        ForeignKey("schedules.id", ondelete="CASCADE"), index=True
    )
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    fire_time: Mapped[float] = mapped_column(Float)
    trigger: Mapped[str] = mapped_column(String(16))
    # A RunState: submitting -> training -> evaluating -> decided (see move_run)
    state: Mapped[str] = mapped_column(String(16), default=RunState.SUBMITTING.value)
    # A RunOutcome (None until decided)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    dataset_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    base_model: Mapped[str | None] = mapped_column(String(512), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    evaluate_job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    evaluation_dataset: Mapped[str | None] = mapped_column(String(40), nullable=True)
    metric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    min_margin: Mapped[float | None] = mapped_column(Float, nullable=True)
    candidate_version: Mapped[int | None] = mapped_column(nullable=True)
    champion_version: Mapped[int | None] = mapped_column(nullable=True)
    candidate_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    champion_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)


def move_run(
    session: Session,
    run_id: str,
    expect: RunState,
    new: RunState,
    *,
    outcome: RunOutcome | None = None,
    **values: object,
) -> bool:
    """The one writer of ``schedule_runs.state``: a compare-and-set from ``expect`` to
    ``new`` with its ``outcome`` and the other ``values``, so of two ticks (or a tick and
    the worker that scored the run) only one moves it. False when the run was elsewhere."""
    if new not in NEXT[expect]:
        raise ValueError(f"schedule run {run_id}: illegal move {expect} -> {new}")
    if outcome is not None:
        values["outcome"] = outcome.value
    result = session.execute(
        update(ScheduleRun)
        .where(ScheduleRun.id == run_id, ScheduleRun.state == expect.value)
        .values(state=new.value, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
