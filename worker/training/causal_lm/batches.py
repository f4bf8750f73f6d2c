"""Batches for causal-LM training: packed without cross-talk, or padded by length group.

Packed: whole examples fill a token budget in the epoch's shuffled order and are
concatenated into ONE row, with position ids restarting at 0 for each example and
no attention mask. transformers (5.x, `masking_utils.find_packed_sequence_indices`)
reads the restarts as sequence boundaries and confines attention to each example:
a block-diagonal causal mask for SDPA/eager on CPU, varlen kernels with flash
attention on GPU. A row holds no padding at all, so no compute is spent on it.

Targets are shifted per example before packing (`targets[t]` is the label of token
t + 1), so the last token of one example never learns to predict the next example.
The loss projects only positions that carry a target onto the vocabulary
(`logits_to_keep`): on short answers (one word after an 60-token prompt) that is a
few rows of the 49k-wide head instead of all of them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from worker.training.batching import length_grouped_batches
from worker.training.causal_lm.rendering import IGNORE_INDEX, EncodedChat

Batch = dict[str, torch.Tensor]


def shifted_targets(labels: Sequence[int]) -> list[int]:
    """The label each position predicts: the next token's, -100 after the last."""
    return [*labels[1:], IGNORE_INDEX]


def packed_bins(lengths: Sequence[int], budget: int, seed: int) -> list[list[int]]:
    """Example indices in a seeded shuffle, cut into bins of at most `budget` tokens.

    Examples are never split (each is at most max_length <= budget tokens), so a
    bin ends when the next example would overflow it.
    """
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    bins: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index in order:
        if current and used + lengths[index] > budget:
            bins.append(current)
            current, used = [], 0
        current.append(index)
        used += lengths[index]
    if current:
        bins.append(current)
    return bins


def padded_groups(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Length-grouped batches of `batch_size` examples, for training without packing."""
    return length_grouped_batches(lengths, batch_size, seed)


def collate_packed(items: Sequence[EncodedChat]) -> Batch:
    """One row: the examples back to back, positions restarting per example."""
    ids: list[int] = []
    positions: list[int] = []
    targets: list[int] = []
    for item in items:
        ids.extend(item.input_ids)
        positions.extend(range(len(item.input_ids)))
        targets.extend(shifted_targets(item.labels))
    return {
        "input_ids": torch.tensor([ids]),
        "position_ids": torch.tensor([positions]),
        "targets": torch.tensor([targets]),
    }


def collate_padded(items: Sequence[EncodedChat], pad_id: int) -> Batch:
    """Rows right-padded to the longest example; the mask hides the padding."""
    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    targets = torch.full((len(items), width), IGNORE_INDEX)
    for row, item in enumerate(items):
        size = len(item.input_ids)
        ids[row, :size] = torch.tensor(item.input_ids)
        mask[row, :size] = 1
        targets[row, :size] = torch.tensor(shifted_targets(item.labels))
    return {"input_ids": ids, "attention_mask": mask, "targets": targets}


def target_count(items: Sequence[EncodedChat]) -> int:
    """Positions with a target in these examples (known before any forward pass)."""
    # The first token is never a target: nothing before it predicts it.
    return sum(1 for item in items for label in item.labels[1:] if label != IGNORE_INDEX)


def summed_loss(model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
    """The summed token cross-entropy of a batch (divide by the target count)."""
    targets = batch["targets"].to(device)
    # Only positions some row trains on are projected onto the vocabulary.
    keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    inputs = {
        name: tensor.to(device)
        for name, tensor in batch.items()
        if name in ("input_ids", "attention_mask", "position_ids")
    }
    logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    # Float32 cross-entropy: a bf16 log-softmax over 49k classes loses precision.
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets[:, keep].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
