"""Checkpoints of a causal-LM run: the trained weights only, plus all run state.

A LoRA checkpoint holds the adapter (a few MB), not the frozen base (538 MB for
SmolLM2), with the optimizer, scheduler, RNG states and the data position
(epoch, micro-batches done, the epoch's order seed) in the encoder engine's
`TrainerState`, so the platform's run envelope handles both kinds alike.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from worker.training.causal_lm.model_setup import trainable_state
from worker.training.checkpoint import (
    STATE_FILE,
    TrainerState,
    _host_rng_state,
    _restore_host_rng,
    _restore_torch_rng,
    _torch_rng_state,
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
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(trainable_state(model), str(partial / TRAINABLE_FILE))
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    torch.save(scheduler.state_dict(), partial / "scheduler.pt")
    torch.save(_torch_rng_state(), partial / "rng_state.pt")
    document = asdict(state) | {"rng": _host_rng_state()}
    (partial / STATE_FILE).write_text(json.dumps(document), encoding="utf-8")
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return directory


def load_sft_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
) -> TrainerState:
    """Restore weights, optimizer, scheduler and RNGs (call it last: it sets the RNGs)."""
    document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    host_rng = document.pop("rng")
    state = TrainerState(**document)
    saved = load_file(str(directory / TRAINABLE_FILE), device=str(device))
    missing = set(trainable_state(model)) - set(saved)
    if missing:
        raise ValueError(f"checkpoint lacks trained weights, e.g. {sorted(missing)[0]}")
    model.load_state_dict(saved, strict=False)
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt"))
    _restore_host_rng(host_rng)
    _restore_torch_rng(torch.load(directory / "rng_state.pt"))
    return state
