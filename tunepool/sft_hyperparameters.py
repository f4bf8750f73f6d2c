"""Hyperparameters of chat fine-tuning (task ``causal-lm``): the one typed check the API
and the worker share, every field explained.

Like TRL's ``SFTConfig``, each field carries its help text; unlike it, bad values fail
when the hyperparameters are built (``SFTSettingsError``, naming the field, with a code
the API maps to a 422), not halfway through a run. Defaults suit LoRA on a ~100M-1B
model. Pure Python: the API checks a submission with it without torch; the engine's
spec (``worker.training.causal_lm.spec``) re-exports it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from tunepool.quoting import quoted

METHODS = ("lora", "full", "qlora")


class SFTSettingsError(ValueError):
    """A setting that cannot run; ``code`` names the kind ("bad_value", "needs_cuda") and
    ``name`` the hyperparameter at fault."""

    def __init__(self, code: str, message: str, name: str = "") -> None:
        self.code = code
        self.name = name
        super().__init__(message)


def _help(text: str, default: Any) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class SFTHyperparameters:
    method: str = _help("lora (default), full (all weights) or qlora (4-bit, CUDA only)", "lora")
    lora_rank: int = _help("rank r of the LoRA update matrices", 16)
    lora_alpha: int = _help("LoRA scaling numerator: the update is scaled by alpha / r", 32)
    lora_dropout: float = _help("dropout on the LoRA input path during training", 0.05)
    lora_target_modules: str | tuple[str, ...] = _help(
        "module names to adapt, or 'all-linear' for every linear layer but the LM head",
        "all-linear",
    )
    epochs: int = _help("passes over the training data", 1)
    learning_rate: float = _help("peak AdamW learning rate (LoRA wants ~1e-4 to 3e-4)", 2e-4)
    batch_size: int = _help("examples per optimizer step", 8)
    max_length: int = _help("tokens per example after chat rendering; longer ones are cut", 1024)
    packing: bool | None = _help(
        "concatenate examples into rows (no padding; attention stays inside each example); "
        "off: length-grouped padded batches, whose common opening (system prompt, fixed "
        "instruction) runs once per batch; None: packed on CUDA only (see auto_packing)",
        None,
    )
    micro_batch_tokens: int = _help(
        "token budget of one forward/backward pass; a step's examples are split into as "
        "many as needed, which bounds memory without changing the step; 0 chooses it",
        0,
    )
    label_balance: float = _help(
        "when every answer is a short label (classification as chat): 0 keeps the data's "
        "mix; 1 draws each label equally often; between, a label's share of an epoch is "
        "proportional to count ** (1 - label_balance). An epoch keeps its size: rarer "
        "labels repeat, commoner ones are subsampled (different ones each epoch)",
        0.0,
    )
    warmup_ratio: float = _help("share of the steps with a linear learning-rate warmup", 0.03)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    max_grad_norm: float = _help("gradient clipping norm; 0 turns clipping off", 1.0)
    seed: int = _help("seed of data order, LoRA initialisation and dropout", 42)
    log_every_steps: int = _help("optimizer steps between progress events", 10)
    checkpoint_every_steps: int = _help("0: checkpoint only at epoch ends and on stop", 0)
    validation_split: float = _help(
        "share of the training data held out when no validation file is given", 0.05
    )
    generation_eval_limit: int = _help(
        "validation examples answered greedily for accuracy/F1 when answers are short "
        "labels or JSON (0: none)",
        200,
    )
    sample_generations: int = _help("validation answers quoted in the report", 3)
    merge_adapter: bool = _help("also export the base with the adapter merged in", False)
    gradient_checkpointing: bool = _help(
        "recompute activations in the backward pass: less memory, ~30% slower; padded "
        "batches then run their common opening in every row",
        False,
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SFTSettingsError("bad_value", f"method must be one of {METHODS}", "method")
        at_least_one = ("lora_rank", "lora_alpha", "epochs", "batch_size", "max_length")
        for name in (*at_least_one, "log_every_steps"):
            if getattr(self, name) < 1:
                raise SFTSettingsError("bad_value", f"{name} must be at least 1", name)
        for name, most in (("lora_rank", 1024), ("max_length", 131_072), ("epochs", 100)):
            if getattr(self, name) > most:
                raise SFTSettingsError("bad_value", f"{name} must be at most {most}", name)
        if not 0 < self.learning_rate <= 1e-2:
            raise SFTSettingsError(
                "bad_value", "learning_rate must be in (0, 0.01]", "learning_rate"
            )
        for name in ("lora_dropout", "warmup_ratio", "validation_split"):
            if not 0 <= getattr(self, name) < 1:
                raise SFTSettingsError("bad_value", f"{name} must be in [0, 1)", name)
        if not 0 <= self.label_balance <= 1:
            raise SFTSettingsError("bad_value", "label_balance must be in [0, 1]", "label_balance")
        negative = ("micro_batch_tokens", "checkpoint_every_steps", "generation_eval_limit")
        for name in (*negative, "sample_generations", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise SFTSettingsError("bad_value", f"{name} must be 0 or more", name)
        targets = self.lora_target_modules
        if isinstance(targets, tuple) and not targets:
            raise SFTSettingsError(
                "bad_value", "lora_target_modules must name at least one module",
                "lora_target_modules",
            )  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SFTHyperparameters:
        """From a user's JSON object; an unknown key or a wrong type is an error, not
        ignored or coerced."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SFTSettingsError(
                "bad_value", f"unknown hyperparameter {quoted(unknown[0])}", unknown[0]
            )
        for name, value in values.items():
            _check_type(name, value)
        if isinstance(values.get("lora_target_modules"), list):
            values = {**values, "lora_target_modules": tuple(values["lora_target_modules"])}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}


_WHOLE = {
    "lora_rank", "lora_alpha", "epochs", "batch_size", "max_length", "micro_batch_tokens",
    "seed", "log_every_steps", "checkpoint_every_steps", "generation_eval_limit",
    "sample_generations",
}  # fmt: skip
_NUMBER = {
    "lora_dropout", "learning_rate", "warmup_ratio", "weight_decay", "max_grad_norm",
    "validation_split", "label_balance",
}  # fmt: skip
_FLAG = {"merge_adapter", "gradient_checkpointing"}


def _check_type(name: str, value: Any) -> None:
    """JSON's types as the fields want them: no silent float -> int (1.5 epochs), no
    string numbers, no booleans as numbers."""

    def bad(wanted: str) -> SFTSettingsError:
        return SFTSettingsError("bad_value", f"{name} must be {wanted}, not {quoted(value)}", name)

    if name in _WHOLE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
    elif name in _NUMBER:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise bad("a finite number")
    elif name in _FLAG:
        if not isinstance(value, bool):
            raise bad("true or false")
    elif name == "packing":
        if value is not None and not isinstance(value, bool):
            raise bad("true, false or null")
    elif name == "method":
        if not isinstance(value, str):
            raise bad(f"one of {', '.join(METHODS)}")
    elif name == "lora_target_modules":
        names = value if isinstance(value, list) else [value]
        if not all(isinstance(n, str) and 0 < len(n) <= 128 for n in names) or len(names) > 64:
            raise bad("'all-linear' or a list of module names")
