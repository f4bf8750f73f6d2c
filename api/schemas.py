"""Request schemas. The same models validate requests and make the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, model_validator


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    gpus: int = Field(1, ge=1, le=64, description="Slots (GPUs) on one worker")


# How long the submitter expects the job to run: admission's backfill and every waiting
# job's estimated start use it (scheduler.planner); without it, DEFAULT_RUNTIME_S.
EstimatedRuntime = Annotated[
    float | None,
    Field(
        gt=0,
        le=30 * 24 * 3600,
        allow_inf_nan=False,
        description="Expected run time in seconds (backfill and estimated starts use it)",
    ),
]


# The base model a fine-tune starts from when it names none: the packaged encoder, or
# for chat fine-tuning (causal-lm) the packaged chat model.
DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
DEFAULT_CHAT_BASE_MODEL = "SmolLM2-135M-Instruct"


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["finetune"] = "finetune"
    task: Literal["token-classification", "sequence-classification", "masked-lm", "causal-lm"]
    base_model: str = Field(
        DEFAULT_BASE_MODEL,
        min_length=1,
        max_length=512,
        description=f"Default: {DEFAULT_BASE_MODEL}; {DEFAULT_CHAT_BASE_MODEL} for causal-lm",
    )
    train_dataset: str = Field(min_length=1, max_length=40)
    validation_dataset: str | None = Field(None, max_length=40)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=lambda: Resources(gpus=1))
    priority: Literal["high", "normal", "low"] = "normal"
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    max_attempts: int | None = Field(None, ge=1, le=20)
    estimated_runtime_s: EstimatedRuntime = None
    validate_only: bool = False

    @model_validator(mode="before")
    @classmethod
    def _default_base_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and "base_model" not in data and data.get("task") == "causal-lm":
            return {**data, "base_model": DEFAULT_CHAT_BASE_MODEL}
        return data


# -- models and inference (issue 5) ------------------------------------------------

MODEL_REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@[A-Za-z][A-Za-z0-9_-]{0,63}|:[1-9][0-9]{0,8})?$"


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    version: int = Field(ge=1, description="The version the alias should point at")
    reason: str = Field("", max_length=500)


class AliasRollback(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    reason: str = Field("", max_length=500)


# One input to predict: a text, or a sentence already split into words. Words are kept
# as given: a token-classification model answers one label per word, and its entity
# spans are word indices (words[start:end]), never a re-split of the caller's words.
MAX_INPUT_CHARS = 20_000


def _bounded_words(words: list[str]) -> list[str]:
    if sum(len(word) for word in words) > MAX_INPUT_CHARS:
        raise ValueError(f"the words of one input may hold at most {MAX_INPUT_CHARS} characters")
    return words


PredictText = Annotated[str, Field(max_length=MAX_INPUT_CHARS)]
PredictWords = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=1_000)]],
    Field(min_length=1, max_length=2_000),
    AfterValidator(_bounded_words),
]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    inputs: list[PredictText | PredictWords] = Field(
        min_length=1,
        max_length=256,
        description='Texts ("Ola lives in Oslo") or word lists (["Ola", "lives", "in", "Oslo"])',
    )


class InferenceJobCreate(BaseModel):
    """A batch inference job: every sentence of a dataset through one model version."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["inference"]
    model: str = Field(pattern=MODEL_REF, description="name@alias, name:version or name")
    dataset: str = Field(min_length=1, max_length=40)
    batch_size: int = Field(32, ge=1, le=512)
    priority: Literal["high", "normal", "low"] = "normal"
    max_attempts: int | None = Field(None, ge=1, le=20)
    estimated_runtime_s: EstimatedRuntime = None


class CompressJobCreate(BaseModel):
    """Dynamic int8 quantisation of a version into a new version of the same model."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: Literal["compress"]
    model: str = Field(pattern=MODEL_REF, description="name@alias, name:version or name")
    priority: Literal["high", "normal", "low"] = "normal"
    max_attempts: int | None = Field(None, ge=1, le=20)
    estimated_runtime_s: EstimatedRuntime = None


class JobSubmission(RootModel[JobCreate | InferenceJobCreate | CompressJobCreate]):
    """What POST /v1/jobs takes: a fine-tune, a batch inference or a compression job.
    The view validates with the one its ``type`` names, so an error names that one's
    field (``api.jobs.submit``)."""

    model_config = ConfigDict(allow_inf_nan=False)
