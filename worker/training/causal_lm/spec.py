"""The typed input of a causal-LM fine-tuning run (chat SFT), every field explained.

Like TRL's `SFTConfig`, each field carries its help text; unlike it, bad values
fail when the spec is built (`SFTSettingsError`, with a code the API can map to a
422), not halfway through a run. Defaults suit LoRA on a ~100M-1B model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

METHODS = ("lora", "full", "qlora")


class SFTSettingsError(ValueError):
    """A setting that cannot run; `code` names the kind ("bad_value", "needs_cuda")."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
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
        "off: length-grouped padded batches; None: packed on CUDA only (see auto_packing)",
        None,
    )
    micro_batch_tokens: int = _help(
        "token budget of one forward/backward pass; a step's examples are split into as "
        "many as needed, which bounds memory without changing the step; 0 chooses it",
        0,
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
        "recompute activations in the backward pass: less memory, ~30% slower", False
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SFTSettingsError("bad_value", f"method must be one of {METHODS}")
        at_least_one = ("lora_rank", "lora_alpha", "epochs", "batch_size", "max_length")
        for name in (*at_least_one, "log_every_steps"):
            if getattr(self, name) < 1:
                raise SFTSettingsError("bad_value", f"{name} must be at least 1")
        if self.lora_rank > 1024 or self.max_length > 131_072 or self.epochs > 100:
            raise SFTSettingsError("bad_value", "lora_rank, max_length or epochs out of range")
        if not 0 < self.learning_rate <= 1e-2:
            raise SFTSettingsError("bad_value", "learning_rate must be in (0, 0.01]")
        for name in ("lora_dropout", "warmup_ratio", "validation_split"):
            if not 0 <= getattr(self, name) < 1:
                raise SFTSettingsError("bad_value", f"{name} must be in [0, 1)")
        negative = ("micro_batch_tokens", "checkpoint_every_steps", "generation_eval_limit")
        for name in (*negative, "sample_generations", "weight_decay", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise SFTSettingsError("bad_value", f"{name} must be 0 or more")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SFTHyperparameters:
        """From a user's JSON object; an unknown key is an error, not ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SFTSettingsError("bad_value", f"unknown hyperparameter {unknown[0]!r}")
        if isinstance(values.get("lora_target_modules"), list):
            values = {**values, "lora_target_modules": tuple(values["lora_target_modules"])}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class SFTSpec:
    """Everything one chat fine-tuning run needs, as plain local paths and values."""

    base_model: str  # "SmolLM2-135M-Instruct", a local directory, or a hub id
    train_file: Path
    output_dir: Path
    train_format: str = "auto"  # openai, sharegpt, alpaca or auto
    validation_file: Path | None = None
    validation_format: str = "auto"
    hyperparameters: SFTHyperparameters = field(default_factory=SFTHyperparameters)
    resume_from: Path | None = None  # a checkpoint directory of an earlier run of this spec
    device: str = "auto"
    # Where builtin base models are converted once (the platform: a synced object-store copy).
    model_cache_dir: Path = Path.home() / ".cache" / "tunepool" / "models"


# Where packing pays. With flash attention (varlen) on CUDA a packed row costs what its
# examples cost alone. On CPU, SDPA gets a dense block-diagonal mask and computes
# attention over the whole row: measured here (SmolLM2 + LoRA, 2 shared cores, noisy)
# one packed 2048-token row took 128 s per step and 9.9 GB against 51 s and 8.4 GB
# for 8 padded rows of 256, so on CPU length-grouped padded batches (about 3 %
# padding) are the faster choice.
def auto_packing(hp: SFTHyperparameters, device_type: str) -> bool:
    return hp.packing if hp.packing is not None else device_type == "cuda"


def auto_micro_batch_tokens(hp: SFTHyperparameters, device_type: str) -> int:
    """Activations of SmolLM2 + LoRA take ~3.5 MB per token without gradient
    checkpointing (measured: 2.4 GB peak at 512 tokens); 1024 tokens keep a CPU job
    within a few GB, a GPU takes far more per pass."""
    if hp.micro_batch_tokens:
        return hp.micro_batch_tokens
    return 16_384 if device_type == "cuda" else 1024


def check_device_support(hp: SFTHyperparameters, device_type: str) -> None:
    """QLoRA's 4-bit kernels (bitsandbytes) exist for CUDA only: refuse it elsewhere."""
    if hp.method == "qlora" and device_type != "cuda":
        raise SFTSettingsError(
            "needs_cuda", "method 'qlora' needs a CUDA GPU; use 'lora' on this device"
        )
