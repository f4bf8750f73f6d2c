"""The typed input of a fine-tuning run: what to train, on what, and how.

The worker builds a `TrainSpec` from the job row; the engine never sees the
database. The hyperparameters and task names live in the core
(`tunepool.hyperparameters`), where the API checks a submission with them; they
are re-exported here for the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunepool.hyperparameters import (
    AUTO_KEYS,
    LOWER_IS_BETTER,
    TASK_ALIASES,
    TASK_METRICS,
    HyperparameterError,
    Hyperparameters,
    auto_value,
    canonical_task,
)

__all__ = [
    "AUTO_KEYS",
    "LOWER_IS_BETTER",
    "TASK_ALIASES",
    "TASK_METRICS",
    "HyperparameterError",
    "Hyperparameters",
    "TrainSpec",
    "auto_value",
    "canonical_task",
]


@dataclass(frozen=True)
class TrainSpec:
    """Everything one fine-tuning run needs, as plain local paths and values."""

    task: str
    base_model: str
    train_file: Path
    train_format: str
    validation_file: Path | None
    validation_format: str | None
    output_dir: Path
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    # A checkpoint directory written by an earlier run of the same spec.
    resume_from: Path | None = None
    # "auto" picks CUDA when present, else CPU; or an explicit torch device string.
    device: str = "auto"
    # Data-parallel processes (one per GPU); >1 runs DDP (see worker.training.distributed).
    world_size: int = 1
