"""OpenAI's fine-tuning job request, checked with tunepool's own rules.

``hyperparameters`` (deprecated by OpenAI) or ``method.supervised.hyperparameters``:
``n_epochs`` and ``batch_size`` within tunepool's ranges, and ``learning_rate_multiplier``
scaling the engine's default learning rate: 5e-5 for the encoders, 2e-4 for chat
fine-tuning with LoRA (``base_learning_rate``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tunepool.hyperparameters import RANGES, HyperparameterError, checked_number

BASE_LEARNING_RATE = 5e-5  # learning_rate_multiplier scales the engine's default
# ... which for chat fine-tuning (causal-lm, LoRA by default) is 2e-4.
CHAT_BASE_LEARNING_RATE = 2e-4


def base_learning_rate(task: str) -> float:
    return CHAT_BASE_LEARNING_RATE if task == "causal-lm" else BASE_LEARNING_RATE


# OpenAI's name -> tunepool's, whose range (tunepool.hyperparameters.RANGES) applies.
_TUNEPOOL_NAME = {"n_epochs": "epochs", "batch_size": "batch_size"}
_MAX_MULTIPLIER = RANGES["learning_rate"].high / BASE_LEARNING_RATE


class OpenAIHyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    n_epochs: int | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    learning_rate_multiplier: float | Literal["auto"] = "auto"

    # Checked before the union, with tunepool's own rules (no 1.5 or "2" as an int), so
    # an error names the field itself rather than a member of the union.
    @field_validator("n_epochs", "batch_size", mode="before")
    @classmethod
    def _whole(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value == "auto":
            return value
        name = _TUNEPOOL_NAME[str(info.field_name)]
        try:
            return checked_number(name, value, RANGES[name])
        except HyperparameterError as exc:
            raise ValueError(f'"auto" or a value that {exc.problem}') from None

    @field_validator("learning_rate_multiplier", mode="before")
    @classmethod
    def _multiplier(cls, value: Any) -> Any:
        if isinstance(value, str) and value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError('"auto" or a number')
        if not 0 < value <= _MAX_MULTIPLIER:
            raise ValueError(
                f"a number in (0, {_MAX_MULTIPLIER:g}]: the learning rate is at most 1"
            )
        return float(value)


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    hyperparameters: OpenAIHyperparameters = Field(default_factory=OpenAIHyperparameters)


class FineTuningMethod(BaseModel):
    """OpenAI's ``method``: supervised fine-tuning is what tunepool runs (DPO and
    reinforcement fine-tuning are refused, naming ``method.type``)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Literal["supervised"]
    supervised: SupervisedMethod | None = None


class FineTuningJobCreate(BaseModel):
    # integrations: accepted, not used
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: str = Field(min_length=1, max_length=512, description="The base model")
    training_file: str = Field(min_length=1, max_length=40)
    validation_file: str | None = Field(None, max_length=40)
    hyperparameters: OpenAIHyperparameters = Field(default_factory=OpenAIHyperparameters)
    suffix: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, strict=True)
    metadata: dict[str, str] | None = None
    method: FineTuningMethod | None = None

    def chosen_hyperparameters(self) -> OpenAIHyperparameters:
        """``method.supervised.hyperparameters`` (OpenAI's current place), else the
        deprecated top-level ``hyperparameters``."""
        if self.method is not None and self.method.supervised is not None:
            return self.method.supervised.hyperparameters
        return self.hyperparameters


# -- the other requests of the OpenAI-compatible routes, for the OpenAPI document ---------
# The views read these fields themselves (query_int, request.form), within these bounds.


class FileUpload(BaseModel):
    """The multipart form of ``client.files.create``."""

    file: bytes = Field(description="chat JSONL, or CoNLL or JSONL token-classification data")
    purpose: Literal["fine-tune"]


class FineTuningJobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(20, ge=1, le=100, description="page size")
    after: str | None = Field(None, description="the last job id seen")


class FineTuningEventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(20, ge=1, le=1000, description="page size")
    after: str | None = Field(None, description="the last event id seen (ftevent-<n>)")


class FileListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(100, ge=1, le=10_000, description="page size")
    after: str | None = Field(None, description="the last file id seen")
    order: Literal["asc", "desc"] = Field("desc", description="desc: newest first")
    purpose: str | None = Field(None, description="fine-tune, the only purpose kept")
