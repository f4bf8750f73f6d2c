"""What the schedule routes answer (``api.schedules``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from api.responses import Answer, Gpus, Priority, Record

# -- schedules -----------------------------------------------------------------------


class PromotionRule(Answer):
    metric: str
    min_margin: float


class Schedule(Answer):
    id: str
    name: str
    trigger: Literal["cron", "new_dataset"]
    cron: str | None
    task: str
    model_name: str
    dataset_name: str
    base: Literal["production", "base_model"]
    base_model: str
    hyperparameters: Record
    evaluation_dataset: str
    promotion: PromotionRule
    priority: Priority
    resources: Gpus
    enabled: bool
    next_fire_at: datetime | None
    last_fire_time: datetime | None
    created_at: datetime
    updated_at: datetime


class SchedulePage(Answer):
    data: list[Schedule]
    next_cursor: str | None


class Removed(Answer):
    id: str
    deleted: Literal[True]


class Scored(Answer):
    version: int | None
    score: float | None


class ScheduleRun(Answer):
    id: str
    schedule_id: str
    fire_time: datetime
    trigger: str = Field(description="cron, new_dataset or manual")
    state: Literal["submitting", "training", "evaluating", "decided"]
    outcome: str | None
    reason: str | None
    dataset_id: str | None
    base_model: str | None
    job_id: str | None
    evaluate_job_id: str | None
    evaluation_dataset: str | None
    metric: str | None
    min_margin: float | None
    candidate: Scored
    champion: Scored
    scores: Record | None
    created_at: datetime
    decided_at: datetime | None


class RunPage(Answer):
    data: list[ScheduleRun]
    next_cursor: str | None
