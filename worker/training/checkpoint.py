"""Checkpoints that let a stopped run continue the same trajectory.

A checkpoint directory holds: the model (`model.safetensors` + `config.json`, so
it also loads as a Hugging Face model), `optimizer.pt`, `scheduler.pt`, the RNG
states (torch in `rng_state.pt`; Python and numpy in `trainer_state.json`), the
data-order state (epoch, batches done in it, the epoch's order seed), and, when
the best epoch so far is not the current weights, `best_model.safetensors`.
Restoring the torch RNG matters: dropout draws from it, so without it the resumed
losses diverge from the uninterrupted run after the first step.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_model, save_model

STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
BEST_FILE = "best_model.safetensors"


@dataclass
class TrainerState:
    """Where the run is, what it has learnt so far, and what it was asked to do."""

    global_step: int = 0
    epoch: int = 0  # the epoch in progress (0-based); == epochs when training is done
    batches_done: int = 0  # batches of `epoch` already trained on
    epoch_seed: int = 0  # seed of `epoch`'s batch order
    batches_in_epoch: int = 0
    epochs_completed: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_epoch: int | None = None  # 1-based, as reports and events name epochs
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_report: dict[str, Any] = field(default_factory=dict)
    loss_history: list[dict[str, float]] = field(default_factory=list)  # one per step
    eval_history: list[dict[str, Any]] = field(default_factory=list)  # epochs 1-based
    labels: list[str] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def fractional_epoch(self) -> float:
        if not self.batches_in_epoch:
            return float(self.epoch)
        return self.epoch + self.batches_done / self.batches_in_epoch


def save_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
    best_weights: Path | None,
) -> Path:
    """Write a complete checkpoint; a half-written one is never left under `directory`."""
    partial = begin_checkpoint(directory)
    save_model(model, str(partial / MODEL_FILE))
    cast(Any, model).config.save_pretrained(partial)
    if best_weights is not None and state.best_step != state.global_step:
        shutil.copyfile(best_weights, partial / BEST_FILE)
    save_run_state(partial, optimizer, scheduler, state)
    return finish_checkpoint(partial, directory)


def begin_checkpoint(directory: Path) -> Path:
    """An empty folder beside ``directory`` to write a checkpoint into."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def finish_checkpoint(partial: Path, directory: Path) -> Path:
    """Put the complete checkpoint in place of ``directory`` (never half-written there)."""
    shutil.rmtree(directory, ignore_errors=True)
    partial.rename(directory)
    return directory


def save_run_state(
    partial: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
) -> None:
    """What every engine's checkpoint holds beside its weights: optimizer, scheduler, RNG
    states and the trainer state (the data position)."""
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    torch.save(scheduler.state_dict(), partial / "scheduler.pt")
    torch.save(_torch_rng_state(), partial / "rng_state.pt")
    document = asdict(state) | {"rng": _host_rng_state()}
    (partial / STATE_FILE).write_text(json.dumps(document), encoding="utf-8")


def read_trainer_state(directory: Path) -> tuple[TrainerState, dict[str, Any]]:
    """The checkpoint's trainer state and its host RNG states (for ``restore_run_state``)."""
    document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    host_rng = document.pop("rng")
    return TrainerState(**document), host_rng


def restore_run_state(
    directory: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    host_rng: dict[str, Any],
) -> None:
    """Optimizer, scheduler and RNG states back; last, as it sets the global RNGs."""
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", map_location=device))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt"))
    _restore_host_rng(host_rng)
    _restore_torch_rng(torch.load(directory / "rng_state.pt"))


def load_checkpoint(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
) -> TrainerState:
    """Restore model, optimizer, scheduler and RNG states; return the trainer state.

    Call it last before training resumes: it sets the global RNGs.
    """
    state, host_rng = read_trainer_state(directory)
    load_model(model, str(directory / MODEL_FILE), device=str(device))
    restore_run_state(directory, optimizer, scheduler, device, host_rng)
    return state


def best_weights_in(directory: Path) -> Path | None:
    path = directory / BEST_FILE
    return path if path.exists() else None


def _host_rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = cast(tuple[Any, ...], np.random.get_state())
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
    }


def _restore_host_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def _torch_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_torch_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
