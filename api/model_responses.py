"""What the registry routes answer (/v1/models): versions, aliases, downloads and
predictions, as their views build them (``api.models``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.responses import Answer, Record

# -- models --------------------------------------------------------------------------


class ModelVersion(Answer):
    id: str
    name: str
    version: int
    ref: str = Field(description="name:version")
    task: str
    base_model: str
    base_version_id: str | None = Field(description="the team's version it continued from")
    artifact: Literal["model", "adapter"]
    job_id: str | None
    metrics: Record | None
    lineage: Record
    aliases: list[str]
    created_at: datetime


class ModelVersions(Answer):
    data: list[ModelVersion]


class AliasEvent(Answer):
    id: int
    alias: str
    kind: Literal["set", "rollback"]
    old_version: int | None
    new_version: int
    at: datetime
    reason: str
    actor: str


class AliasHistory(Answer):
    data: list[AliasEvent]


class AliasMove(AliasEvent):
    name: str


class DownloadFile(Answer):
    path: str
    size: int
    sha256: str
    url: str = Field(description="presigned; valid for expires_in_s")


class DownloadLinks(Answer):
    """On S3: presigned URLs. Other stores answer the files as one tar stream."""

    name: str
    version: int
    expires_in_s: int
    files: list[DownloadFile]


class PredictedBy(Answer):
    name: str
    version: int
    task: str
    id: str


class Predictions(Answer):
    model: PredictedBy
    predictions: list[Any] = Field(description="one per input, in the task's shape")
    took_ms: float
