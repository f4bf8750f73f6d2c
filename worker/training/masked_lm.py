"""Masked-language-model continued pre-training on unlabeled text (domain adaptation).

BERT's recipe: 15 % of the real tokens are chosen; of those 80 % become [MASK],
10 % a random token, 10 % stay; only chosen positions carry a label. Training
batches draw the choice from torch's global generator, whose state every
checkpoint saves, so a resumed run masks exactly as the uninterrupted one would.
Validation documents are masked once with a fixed seed, so the loss and perplexity
of different epochs are measured on the same task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tunepool.data.text_files import TextDocument
from worker.training.batching import sorted_batches
from worker.training.collate import PAD_MULTIPLE, padded_length
from worker.training.evaluation import autocast
from worker.training.token_classification import IGNORE_INDEX

MASK_PROBABILITY = 0.15
_TOKENIZE_CHUNK = 1000


@dataclass(frozen=True)
class EncodedDocument:
    input_ids: list[int]
    special: list[bool]  # [CLS], [SEP]: never masked


@dataclass(frozen=True)
class MaskingTokens:
    pad: int
    mask: int
    vocab_size: int


def encode_documents(
    documents: Sequence[TextDocument], tokenizer: Any, max_length: int
) -> list[EncodedDocument]:
    encoded: list[EncodedDocument] = []
    for start in range(0, len(documents), _TOKENIZE_CHUNK):
        chunk = documents[start : start + _TOKENIZE_CHUNK]
        batch = tokenizer(
            [d.text for d in chunk],
            truncation=True,
            max_length=max_length,
            return_special_tokens_mask=True,
        )
        for ids, special in zip(batch["input_ids"], batch["special_tokens_mask"], strict=True):
            encoded.append(EncodedDocument(list(ids), [bool(s) for s in special]))
    return encoded


def masking_tokens(tokenizer: Any) -> MaskingTokens:
    if tokenizer.mask_token_id is None:
        raise ValueError("masked-lm needs a tokenizer with a mask token")
    return MaskingTokens(int(tokenizer.pad_token_id), int(tokenizer.mask_token_id), len(tokenizer))


def mask_batch(
    items: Sequence[EncodedDocument],
    tokens: MaskingTokens,
    generator: torch.Generator | None = None,
    multiple: int = PAD_MULTIPLE,
) -> dict[str, torch.Tensor]:
    """Pad, then mask; `generator` None draws from (and advances) the global one."""
    width = padded_length(max(len(item.input_ids) for item in items), multiple)
    input_ids = torch.full((len(items), width), tokens.pad, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    maskable = torch.zeros((len(items), width), dtype=torch.bool)
    for row, item in enumerate(items):
        length = len(item.input_ids)
        input_ids[row, :length] = torch.tensor(item.input_ids, dtype=torch.long)
        attention_mask[row, :length] = 1
        maskable[row, :length] = ~torch.tensor(item.special, dtype=torch.bool)
    chosen = (torch.rand(input_ids.shape, generator=generator) < MASK_PROBABILITY) & maskable
    # A short document may draw no position; give it one, so that no batch has an
    # empty loss (a mean over nothing is NaN and would poison the weights).
    fallback = (torch.rand(input_ids.shape, generator=generator) * maskable).argmax(dim=1)
    empty = ~chosen.any(dim=1) & maskable.any(dim=1)
    chosen[empty.nonzero(as_tuple=True)[0], fallback[empty]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    action = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(tokens.vocab_size, input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (action < 0.8)] = tokens.mask
    swap = chosen & (action >= 0.8) & (action < 0.9)
    masked[swap] = random_ids[swap]
    return {"input_ids": masked, "attention_mask": attention_mask, "labels": labels}


def fixed_evaluation_batches(
    items: Sequence[EncodedDocument], tokens: MaskingTokens, batch_size: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        mask_batch([items[i] for i in indices], tokens, generator)
        for indices in sorted_batches([len(item.input_ids) for item in items], batch_size)
    ]


@torch.inference_mode()
def evaluate_masked_lm(
    model: torch.nn.Module, batches: Sequence[dict[str, torch.Tensor]], device: torch.device
) -> tuple[dict[str, float], dict[str, Any]]:
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    predicted = 0
    for batch in batches:
        count = int((batch["labels"] != IGNORE_INDEX).sum())
        if not count:
            continue
        with autocast(device):
            output = model(**{key: value.to(device) for key, value in batch.items()})
        loss_sum += output.loss.float() * count
        predicted += count
    model.train(was_training)
    loss = float(loss_sum) / predicted if predicted else 0.0
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
    return metrics, {"masked_tokens": predicted, **metrics}
