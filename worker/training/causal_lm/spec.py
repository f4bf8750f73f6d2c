"""The typed input of a causal-LM fine-tuning run (chat SFT).

The hyperparameters live in the core (`tunepool.sft_hyperparameters`), where the API
checks a submission with them; they are re-exported here for the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunepool.sft_hyperparameters import METHODS, SFTHyperparameters, SFTSettingsError

__all__ = [
    "METHODS",
    "SFTHyperparameters",
    "SFTSettingsError",
    "SFTSpec",
    "auto_micro_batch_tokens",
    "auto_packing",
    "check_device_support",
]


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
            "needs_cuda", "method 'qlora' needs a CUDA GPU; use 'lora' on this device", "method"
        )
