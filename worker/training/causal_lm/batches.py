"""Batches for causal-LM training: packed without cross-talk, or padded by length group.

An optimizer step takes `batch_size` examples; they are split into micro-batches
of a token budget, which bounds activation memory without changing the step.
Packed: whole examples fill a row of at most the budget and are concatenated,
with position ids restarting at 0 for each example and no attention mask.
transformers (5.x, `masking_utils.find_packed_sequence_indices`) reads the restarts
as sequence boundaries and confines attention to each example:
a block-diagonal causal mask under SDPA, variable-length kernels under
flash-attention 2 on GPU. A row holds no padding at all, so no compute is spent on it.

Targets are shifted per example before packing (`targets[t]` is the label of token
t + 1), so the last token of one example never learns to predict the next example.
The loss projects only positions that carry a target onto the vocabulary
(`logits_to_keep`): on short answers (one word after a 60-token prompt) that is a
few rows of the 49k-wide head instead of all of them.

Padded rows that open with the same tokens (the template's system prompt, a task's
fixed instruction) share them: the common prefix runs once as a one-row pass whose
key/value cache is repeated over the rows, and the rows run only their own tokens
on top of it. Causal attention makes the prefix's states independent of what
follows, so the loss and its gradients are those of the full rows; classification
written as chat (a 35-token instruction before a 20-token message) roughly halves
its work. The prefix stops before any position that predicts a target.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from worker.training.batching import length_grouped_batches
from worker.training.causal_lm.rendering import IGNORE_INDEX, EncodedChat

Batch = dict[str, torch.Tensor]

# Below this, the extra one-row pass costs more than the shared tokens save.
MIN_SHARED_PREFIX = 8


def shifted_targets(labels: Sequence[int]) -> list[int]:
    """The label each position predicts: the next token's, -100 after the last."""
    return [*labels[1:], IGNORE_INDEX]


def step_batches(
    epoch: Sequence[int], lengths: Sequence[int], batch_size: int, seed: int, grouped: bool
) -> list[list[int]]:
    """The examples of each optimizer step, `batch_size` per step, in a seeded order:
    the indices of `epoch` (each example once, or a label-balanced draw).

    Without packing, steps are length-grouped so their padded micro-batches waste
    little; with packing, steps are plain random draws (packing leaves no padding).
    """
    if grouped:
        steps = length_grouped_batches([lengths[i] for i in epoch], batch_size, seed)
        return [[epoch[position] for position in step] for step in steps]
    order = list(epoch)
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def micro_batches(
    indices: Sequence[int], lengths: Sequence[int], budget: int, packed: bool
) -> list[list[int]]:
    """Split one step's examples into micro-batches of at most `budget` tokens.

    Packed: first-fit decreasing into rows of at most `budget` real tokens (one row
    per micro-batch). Padded: longest first, cut where rows x longest row would
    exceed the budget. An example longer than the budget goes alone, never split.
    The split only bounds memory: the step's loss is the same (see `SFTLoop`).
    """
    ordered = sorted(indices, key=lambda i: lengths[i], reverse=True)
    groups: list[list[int]] = []
    if packed:
        room: list[int] = []
        for index in ordered:
            slot = next((b for b, free in enumerate(room) if free >= lengths[index]), None)
            if slot is None:
                groups.append([index])
                room.append(budget - lengths[index])
            else:
                groups[slot].append(index)
                room[slot] -= lengths[index]
        return groups
    for index in ordered:
        # Sorted longest first: the group's width is its first example's length.
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= budget:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


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


def shared_prefix(items: Sequence[EncodedChat]) -> int:
    """How many leading tokens every row has in common and none of them predicts a
    target (0 when fewer than `MIN_SHARED_PREFIX`, or for a single row)."""
    if len(items) < 2:
        return 0
    # Position t predicts token t + 1: the prefix ends before the first target's
    # predecessor, and every row keeps at least one token of its own.
    limit = min(min(len(item.input_ids) - 1, _first_target(item.labels) - 1) for item in items)
    first = items[0].input_ids
    size = 0
    while size < limit and all(item.input_ids[size] == first[size] for item in items[1:]):
        size += 1
    return size if size >= MIN_SHARED_PREFIX else 0


def _first_target(labels: Sequence[int]) -> int:
    return next((t for t, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))


def collate_padded(items: Sequence[EncodedChat], pad_id: int, share_prefix: bool = True) -> Batch:
    """Rows right-padded to the longest example; the mask hides the padding.

    With `share_prefix`, the rows' common prefix (`shared_prefix`) becomes
    `prefix_ids` (one row), and `input_ids`/`targets` hold the rest of each row; the
    mask spans prefix and rest. Gradient checkpointing drops a layer's cache, so a
    model trained with it must not share.
    """
    skip = shared_prefix(items) if share_prefix else 0
    width = max(len(item.input_ids) for item in items) - skip
    ids = torch.full((len(items), width), pad_id)
    mask = torch.zeros((len(items), skip + width), dtype=torch.long)
    mask[:, :skip] = 1
    targets = torch.full((len(items), width), IGNORE_INDEX)
    for row, item in enumerate(items):
        size = len(item.input_ids) - skip
        ids[row, :size] = torch.tensor(item.input_ids[skip:])
        mask[row, skip : skip + size] = 1
        targets[row, :size] = torch.tensor(shifted_targets(item.labels)[skip:])
    batch = {"input_ids": ids, "attention_mask": mask, "targets": targets}
    if skip:
        batch["prefix_ids"] = torch.tensor([items[0].input_ids[:skip]])
    return batch


def target_count(items: Sequence[EncodedChat]) -> int:
    """Positions with a target in these examples (known before any forward pass)."""
    # The first token is never a target: nothing before it predicts it.
    return sum(1 for item in items for label in item.labels[1:] if label != IGNORE_INDEX)


def summed_loss(model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
    """The summed token cross-entropy of a batch (divide by the target count)."""
    targets = batch["targets"].to(device)
    # Only positions some row trains on are projected onto the vocabulary.
    keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    inputs: dict[str, object] = {
        name: tensor.to(device)
        for name, tensor in batch.items()
        if name in ("input_ids", "attention_mask", "position_ids")
    }
    if "prefix_ids" in batch:
        inputs["cache"] = _prefix_cache(model, batch["prefix_ids"].to(device), len(targets))
    logits = model(**inputs, use_cache="cache" in inputs, logits_to_keep=keep).logits
    # Float32 cross-entropy: a bf16 log-softmax over 49k classes loses precision.
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets[:, keep].reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )


def _prefix_cache(model: torch.nn.Module, prefix: torch.Tensor, rows: int) -> object:
    """The key/value cache of one pass over `prefix`, repeated for `rows` rows.

    The repeat keeps the autograd graph, so every row's gradient reaches the
    prefix's (LoRA) weights through it."""
    cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
    if cache is None or cache.get_seq_length() != prefix.shape[1]:
        raise RuntimeError("the model kept no key/value cache for the shared prefix")
    cache.batch_repeat_interleave(rows)
    return cache
