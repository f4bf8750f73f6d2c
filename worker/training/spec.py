"""The typed input of a fine-tuning run: what to train, on what, and how.

The worker builds a `TrainSpec` from the job row; the engine never sees the
database. `Hyperparameters.from_dict` rejects unknown keys so that a typo in a
user's job request ("learning_rat") fails loudly instead of being ignored.

A value of "auto" (and, through `from_dict(..., omitted_auto=True)`, a key left
out) is chosen by the engine once it knows the data size; see `resolve_auto`.
The result records which values were chosen so a job can store what it used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The API's task names (Hugging Face pipeline spelling) and the spellings also accepted.
TASK_ALIASES = {
    "token-classification": ("token-classification", "token_classification", "ner"),
    "sequence-classification": (
        "sequence-classification",
        "sequence_classification",
        "text-classification",
        "classification",
    ),
    "masked-lm": ("masked-lm", "masked_lm", "mlm"),
}
# Flat metrics that can pick the best epoch, per task; the first is the "auto" choice.
TASK_METRICS = {
    "token-classification": (
        "f1",
        "precision",
        "recall",
        "macro_f1",
        "strict_f1",
        "token_accuracy",
        "loss",
    ),
    "sequence-classification": (
        "macro_f1",
        "accuracy",
        "macro_precision",
        "macro_recall",
        "loss",
    ),
    "masked-lm": ("loss", "perplexity"),
}
# Keys whose default is chosen from the data size when omitted or "auto".
AUTO_KEYS = ("epochs", "learning_rate", "batch_size", "warmup_ratio", "metric_for_best")
# Lower is better for these; every other metric improves upwards.
LOWER_IS_BETTER = ("loss", "perplexity")


def canonical_task(name: str) -> str:
    for task, spellings in TASK_ALIASES.items():
        if name in spellings:
            return task
    known = sorted(spelling for spellings in TASK_ALIASES.values() for spelling in spellings)
    raise ValueError(f"task {name!r} is not supported; expected one of {known}")


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
    # Held out of the training data when no validation set is given (stratified
    # by label for classification).
    validation_split: float = 0.1
    # Stop after this many evaluations without improvement; 0 never stops early.
    early_stopping_patience: int = 0
    # Names of the fields still to be chosen from the data size ("auto").
    auto: tuple[str, ...] = ()

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
        if not 0 < self.validation_split < 1:
            raise ValueError("hyperparameter validation_split must be in (0, 1)")
        if self.early_stopping_patience < 0:
            raise ValueError("hyperparameter early_stopping_patience must be 0 or more")
        for name in self.auto:
            if name not in AUTO_KEYS:
                raise ValueError(f"hyperparameter {name} has no automatic value")

    @classmethod
    def from_dict(cls, values: dict[str, Any], omitted_auto: bool = False) -> Hyperparameters:
        """Build from a user's JSON object; unknown keys are an error, not ignored.

        "auto" as a value leaves the choice to `resolve_auto`; with `omitted_auto`
        so does leaving a key of `AUTO_KEYS` out.
        """
        known = {f.name for f in dataclasses.fields(cls)} - {"auto"}
        for key in values:
            if key not in known:
                raise ValueError(
                    f"unknown hyperparameter {key!r}; known: {', '.join(sorted(known))}"
                )
        auto = [key for key, value in values.items() if value == "auto"]
        for key in auto:
            if key not in AUTO_KEYS:
                raise ValueError(f"hyperparameter {key} has no automatic value")
        if omitted_auto:
            auto += [key for key in AUTO_KEYS if key not in values]
        given = {key: value for key, value in values.items() if value != "auto"}
        return cls(**given, auto=tuple(sorted(set(auto))))

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["auto"] = list(self.auto)
        return values

    def resolve_auto(self, task: str, train_examples: int) -> Hyperparameters:
        """Fill the "auto" fields from the task and the number of training examples.

        Small data needs more passes and gains from a larger rate; large data
        converges in fewer epochs and batches can grow. The rules are deliberately
        simple and are recorded with the job, so a user can see and override them.
        """
        task = canonical_task(task)
        chosen: dict[str, Any] = {}
        for name in self.auto:
            chosen[name] = auto_value(name, task, train_examples)
        return dataclasses.replace(self, **chosen, auto=())


def auto_value(name: str, task: str, train_examples: int) -> Any:
    """The automatic value of one hyperparameter (see `Hyperparameters.resolve_auto`)."""
    n = train_examples
    if name == "metric_for_best":
        return TASK_METRICS[task][0]
    if name == "epochs":
        if task == "masked-lm":
            return 3 if n < 10_000 else 1
        return 5 if n < 1_000 else 3 if n < 20_000 else 2
    if name == "batch_size":
        return 8 if n < 500 else 16 if n < 20_000 else 32
    if name == "learning_rate":
        if task == "masked-lm":
            return 5e-5
        return 1e-4 if n < 5_000 else 5e-5
    if name == "warmup_ratio":
        return 0.1 if n < 20_000 else 0.06
    raise ValueError(f"hyperparameter {name} has no automatic value")


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
