"""Hyperparameters and task names: the one typed check the API and the worker share.

The API checks a job's hyperparameters at submit with the same `Hyperparameters` the
worker trains with, so nothing accepted can fail on the worker for a reason knowable
at submit (issue 20): unknown keys, wrong types (no silent float -> int: "epochs": 1.5
ran two epochs and recorded 1.5), values out of range, a metric the task does not
report. Each refusal is a `HyperparameterError` naming the hyperparameter.

A value of "auto" (and, through `from_dict(..., omitted_auto=True)`, a key left
out) is chosen by the engine once it knows the data size; see `resolve_auto`.
The result records which values were chosen so a job can store what it used.
Pure Python: the API imports it without torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from tunepool.quoting import excerpt, quoted

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


# Every metric some task can pick its best epoch by.
ALL_METRICS = tuple(sorted({m for metrics in TASK_METRICS.values() for m in metrics}))


def canonical_task(name: str) -> str:
    for task, spellings in TASK_ALIASES.items():
        if name in spellings:
            return task
    known = sorted(spelling for spellings in TASK_ALIASES.values() for spelling in spellings)
    raise ValueError(f"task {name!r} is not supported; expected one of {known}")


class HyperparameterError(ValueError):
    """A hyperparameter that cannot be used; ``name`` is the one at fault."""

    def __init__(self, name: str, problem: str, message: str | None = None) -> None:
        self.name = name
        self.problem = problem
        super().__init__(message or f"hyperparameter {name} {problem}")


@dataclass(frozen=True)
class Range:
    """The numbers a hyperparameter accepts: whole numbers (``whole``) or any finite number."""

    whole: bool
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        if self.whole:
            return f"must be a whole number from {self.low:g} to {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"must be a number in {left}{self.low:g}, {self.high:g}{right}"


# Upper bounds are what a run on this platform can use, not what the code would accept:
# a batch of 1e21 or 1e12 epochs is a mistake to refuse at submit, not to find on a GPU.
RANGES: dict[str, Range] = {
    "epochs": Range(True, 1, 1000),
    "learning_rate": Range(False, 0, 1, low_open=True),
    "batch_size": Range(True, 1, 4096),
    "warmup_ratio": Range(False, 0, 1, high_open=True),
    "weight_decay": Range(False, 0, 1),
    "max_grad_norm": Range(False, 0, 10_000),  # 0: no clipping
    "gradient_accumulation": Range(True, 1, 1024),
    # The position embeddings of the BERT-family models the platform trains stop at 512.
    "max_length": Range(True, 8, 512),
    "seed": Range(True, 0, 2**32 - 1),
    "checkpoint_every_steps": Range(True, 0, 10_000_000),
    "log_every_steps": Range(True, 1, 1_000_000),
    "validation_split": Range(False, 0, 1, low_open=True, high_open=True),
    "early_stopping_patience": Range(True, 0, 1000),
}


def checked_number(name: str, value: Any, allowed: Range) -> float | int:
    """``value`` if ``allowed`` admits it (a float for a non-whole range); else the error."""
    # bool is an int to Python, never to a user; a float is never silently cut to an int.
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a whole number" if allowed.whole else "a number"
        raise HyperparameterError(name, f"must be {kind}, not {type(value).__name__}")
    if allowed.whole and not isinstance(value, int):
        raise HyperparameterError(name, f"must be a whole number, not {value!r}")
    if not math.isfinite(value) or not allowed.admits(value):
        raise HyperparameterError(name, allowed.describe())
    return value if allowed.whole else float(value)


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
    # One of the task's TASK_METRICS; "f1" (the default) means the task's headline score.
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
        for name, allowed in RANGES.items():
            # Frozen: the checked value (an int learning rate as a float) is set directly.
            object.__setattr__(self, name, checked_number(name, getattr(self, name), allowed))
        if not isinstance(self.eval_every_epoch, bool):
            raise HyperparameterError("eval_every_epoch", "must be true or false")
        if not isinstance(self.metric_for_best, str) or self.metric_for_best not in ALL_METRICS:
            raise HyperparameterError(
                "metric_for_best", f"must be one of {', '.join(ALL_METRICS)} (per task)"
            )
        for name in self.auto:
            if name not in AUTO_KEYS:
                raise HyperparameterError(name, "has no automatic value")

    @classmethod
    def from_dict(cls, values: dict[str, Any], omitted_auto: bool = False) -> Hyperparameters:
        """Build from a user's JSON object; unknown keys are an error, not ignored.

        "auto" as a value leaves the choice to `resolve_auto`; with `omitted_auto`
        so does leaving a key of `AUTO_KEYS` out.
        """
        known = {f.name for f in dataclasses.fields(cls)} - {"auto"}
        for key in values:
            if key not in known:
                listed = f"known: {', '.join(sorted(known))}"
                raise HyperparameterError(
                    excerpt(str(key), 64),
                    f"is unknown; {listed}",
                    f"unknown hyperparameter {quoted(key, 64)}; {listed}",
                )
        auto = [key for key, value in values.items() if value == "auto"]
        for key in auto:
            if key not in AUTO_KEYS:
                raise HyperparameterError(key, "has no automatic value")
        if omitted_auto:
            auto += [key for key in AUTO_KEYS if key not in values]
        given = {key: value for key, value in values.items() if value != "auto"}
        return cls(**given, auto=tuple(sorted(set(auto))))

    def for_task(self, task: str) -> Hyperparameters:
        """These settings for ``task``: its metric must be one the task reports.

        "f1", the class default, means each task's headline score.
        """
        task = canonical_task(task)
        allowed = TASK_METRICS[task]
        if "metric_for_best" in self.auto or self.metric_for_best in allowed:
            return self
        if task == "token-classification" or self.metric_for_best != "f1":
            raise HyperparameterError(
                "metric_for_best",
                f"{self.metric_for_best!r} is not one of {', '.join(allowed)} ({task})",
            )
        return dataclasses.replace(self, metric_for_best=allowed[0])

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
