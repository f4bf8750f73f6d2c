"""The typed input of a fine-tuning run: what to train, on what, and how.

The worker builds a `TrainSpec` from the job row; the engine never sees the
database. `Hyperparameters.from_dict` rejects unknown keys so that a typo in a
user's job request ("learning_rat") fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Hyperparameters:
    """Optimisation settings; defaults suit BERT-sized NER fine-tuning."""

    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    gradient_accumulation: int = 1
    # A cap on word pieces per sentence; batches are padded only to their longest
    # sentence (rounded up to a multiple of 8), never to this value.
    max_length: int = 128
    seed: int = 42
    eval_every_epoch: bool = True
    # 0: checkpoint only at epoch ends and when asked to stop.
    checkpoint_every_steps: int = 0
    metric_for_best: str = "f1"
    log_every_steps: int = 10

    def __post_init__(self) -> None:
        positive = (
            "epochs",
            "batch_size",
            "gradient_accumulation",
            "max_length",
            "log_every_steps",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"hyperparameter {name} must be at least 1")
        if self.max_length < 8:
            raise ValueError("hyperparameter max_length must be at least 8")
        if self.learning_rate <= 0:
            raise ValueError("hyperparameter learning_rate must be positive")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("hyperparameter warmup_ratio must be in [0, 1)")
        if self.checkpoint_every_steps < 0:
            raise ValueError("hyperparameter checkpoint_every_steps must be 0 or more")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Hyperparameters:
        """Build from a user's JSON object; unknown keys are an error, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ValueError(
                    f"unknown hyperparameter {key!r}; known: {', '.join(sorted(known))}"
                )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
