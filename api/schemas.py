"""Request schemas. The same models validate requests and (later) generate OpenAPI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gpus: int = Field(1, ge=1, le=64, description="Slots (GPUs) on one worker")


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["finetune"] = "finetune"
    task: Literal["token-classification"]
    base_model: str = Field("all-MiniLM-L6-v2", min_length=1, max_length=512)
    train_dataset: str = Field(min_length=1, max_length=40)
    validation_dataset: str | None = Field(None, max_length=40)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=lambda: Resources(gpus=1))
    priority: Literal["high", "normal", "low"] = "normal"
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    max_attempts: int | None = Field(None, ge=1, le=20)
    validate_only: bool = False
