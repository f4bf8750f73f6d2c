"""What the OpenAI-compatible routes answer, as OpenAI's SDK reads it: files, fine-tuning
jobs with their events and checkpoints, and models (``api.openai_compat``,
``api.openai_files``, ``api.openai_models``). Moments are unix seconds, as OpenAI's."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, RootModel

from api.responses import Answer, Record

Auto = Literal["auto"]


class OpenAIFile(Answer):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["fine-tune"]
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None


class FileList(Answer):
    object: Literal["list"]
    data: list[OpenAIFile]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class ChosenHyperparameters(Answer):
    n_epochs: int | Auto
    batch_size: int | Auto
    learning_rate_multiplier: float | Auto


class Supervised(Answer):
    hyperparameters: ChosenHyperparameters


class Method(Answer):
    type: Literal["supervised"]
    supervised: Supervised


class JobFailure(Answer):
    code: str
    message: str | None
    param: str | None


class FineTuningJob(Answer):
    id: str
    object: Literal["fine_tuning.job"]
    created_at: int
    finished_at: int | None
    estimated_finish: int | None
    model: str | None
    fine_tuned_model: str | None
    organization_id: str = Field(description="the team")
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    training_file: str | None
    validation_file: str | None
    result_files: list[str]
    trained_tokens: int | None
    error: JobFailure | None
    hyperparameters: ChosenHyperparameters
    method: Method
    seed: int | None
    user_provided_suffix: str | None
    metadata: dict[str, str] | None
    integrations: list[Record]


class FineTuningJobList(Answer):
    object: Literal["list"]
    data: list[FineTuningJob]
    has_more: bool


class FineTuningEvent(Answer):
    object: Literal["fine_tuning.job.event"]
    id: str = Field(description="ftevent-<n>")
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: Record
    type: Literal["message", "metrics"]


class FineTuningEventList(Answer):
    object: Literal["list"]
    data: list[FineTuningEvent]
    has_more: bool


class FineTuningCheckpoint(Answer):
    object: Literal["fine_tuning.job.checkpoint"]
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: Record


class FineTuningCheckpointList(Answer):
    object: Literal["list"]
    data: list[FineTuningCheckpoint]
    has_more: bool


class _OpenAIModel(Answer):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str = Field(description="tunepool for a base model, else the team")


class BaseModelObject(_OpenAIModel):
    """An allow-listed model a fine-tune may start from."""

    kind: Literal["base"]
    name: str
    task: Literal["causal-lm", "encoder"] | None
    latest_version: None
    versions: Literal[0]
    aliases: dict[str, int]


class RegistryModel(_OpenAIModel):
    """A model of the team's registry, named after its newest version."""

    kind: Literal["fine-tuned"]
    name: str
    task: str
    latest_version: int
    versions: int
    aliases: dict[str, int]
    updated_at: datetime = Field(description="RFC 3339, as the native API writes it")


class VersionObject(_OpenAIModel):
    """One version, by the id it was asked for (ft:..., name:version or name@alias)."""

    kind: Literal["fine-tuned"]
    name: str
    version: int
    task: str
    base_model: str


class ModelList(Answer):
    object: Literal["list"]
    data: list[RegistryModel | BaseModelObject]


class ModelObject(RootModel[RegistryModel | BaseModelObject | VersionObject]):
    """What ``models.retrieve`` answers for a name, an ft: id or a registry reference."""
