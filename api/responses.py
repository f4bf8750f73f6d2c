"""What the native API answers: the models of its JSON bodies, for the OpenAPI document.

The views build their answers as dicts (``job_json``, ``dataset_json``, ...); these
models describe them field for field, and tests/observability/test_openapi_answers.py
checks real answers against the document they become. ``extra="forbid"``: a field a
view adds without describing it here fails that check. Moments are RFC 3339 text in
UTC (``api.times``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.states import JobState

Priority = Literal["high", "normal", "low"]
Record = dict[str, Any]


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- platform ------------------------------------------------------------------------


class Health(Answer):
    status: Literal["ok", "degraded"]
    database: str = Field(description="ok, or the class of the error that reached it")


class ServingWorker(Answer):
    name: str
    queue_depth: int
    capacity: int
    models: int
    draining: bool


class Readiness(Answer):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description="per dependency: ok, or why it is down")
    down: list[str]
    serving_workers: list[ServingWorker] | None = Field(
        None, description="when Redis answers; null when the workers could not be read"
    )


class OpenAPIDocument(BaseModel):
    """This document."""

    model_config = ConfigDict(extra="allow")
    openapi: str
    info: Record
    paths: Record


# -- jobs ----------------------------------------------------------------------------


class Gpus(Answer):
    gpus: int


class Job(Answer):
    id: str
    type: Literal["finetune", "inference", "compress", "evaluate"]
    task: str
    state: JobState
    reason_code: str | None = Field(description="why it waits or failed, for programs")
    reason: str | None = Field(description="why it waits or failed, for people")
    queue_position: int | None = Field(description="while pending: 1 is next")
    estimated_start: datetime | None = Field(description="while pending")
    priority: Priority
    resources: Gpus
    worker: str | None
    attempt: int
    max_attempts: int
    model_name: str | None
    model_version_id: str | None = Field(description="the version it made, once succeeded")
    progress: Record | None = Field(description="step, epoch, loss, rate and ETA")
    metrics: Record | None
    error: str | None
    spec: Record = Field(description="what was submitted, with defaults filled in")
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class JobCheck(Answer):
    """The answer to ``validate_only``: the job would be accepted."""

    valid: Literal[True]
    train_dataset: Record = Field(description="the training set's statistics")
    report: Record
    estimate: Record | None = Field(None, description="a chat fine-tune's run-time estimate")


class JobEvent(Answer):
    id: int
    at: datetime
    kind: str = Field(description="state, progress, evaluation, edit, ...")
    old_state: str | None
    new_state: str | None
    reason: str | None
    data: Record | None


class EventPage(Answer):
    """One page of events; with ``follow=1``, text/event-stream whose ``id`` is the event's."""

    data: list[JobEvent]
    next_after: int = Field(description="send as ?after= for the next page")


class LogBatch(Answer):
    id: int
    lines: list[Record] = Field(description="{at, level, message} as the runner wrote them")


class LogPage(Answer):
    data: list[LogBatch]
    next_after: int


class JobPage(Answer):
    data: list[Job]
    next_cursor: str | None


# -- datasets ------------------------------------------------------------------------


class Dataset(Answer):
    id: str
    name: str
    task: str
    format: str
    size: int = Field(description="bytes")
    sha256: str
    stats: Record | None
    status: Literal["validating", "ready", "failed"]
    status_details: Record | None = Field(description="when failed: message and line")
    created_at: datetime


class DatasetPage(Answer):
    data: list[Dataset]
    next_cursor: str | None
