"""Checkpoints of a causal-LM run: the trained weights only, plus all run state.

A LoRA checkpoint holds the adapter (a few MB), not the frozen base (538 MB for
SmolLM2), with the optimizer, scheduler, RNG states and the data position
(epoch, micro-batches done, the epoch's order seed) in the encoder engine's
`TrainerState`, so the platform's run envelope handles both kinds alike.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from worker.training.causal_lm.model_setup import trainable_state
from worker.training.checkpoint import (
    TrainerState,
    begin_checkpoint,
    finish_checkpoint,
    read_trainer_state,
    restore_run_state,
    save_run_state,
)

TRAINABLE_FILE = "trainable.safetensors"


def save_sft_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
) -> Path:
    """Write a complete checkpoint; a half-written one is never left under `directory`."""
    partial = begin_checkpoint(directory)
    save_file(trainable_state(model), str(partial / TRAINABLE_FILE))
    save_run_state(partial, optimizer, scheduler, state)
    return finish_checkpoint(partial, directory)


def load_sft_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
) -> TrainerState:
    """Restore weights, optimizer, scheduler and RNGs (call it last: it sets the RNGs)."""
    state, host_rng = read_trainer_state(directory)
    saved = load_file(str(directory / TRAINABLE_FILE), device=str(device))
    missing = set(trainable_state(model)) - set(saved)
    if missing:
        raise ValueError(f"checkpoint lacks trained weights, e.g. {sorted(missing)[0]}")
    model.load_state_dict(saved, strict=False)
    restore_run_state(directory, optimizer, scheduler, device, host_rng)
    return state
