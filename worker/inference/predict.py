"""Batched prediction: tokenize once, sort by length, pad each batch to its own longest input.

Sorting keeps sentences of similar length together, so short inputs do not pay for
the padding of long ones; results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from worker.inference.model import TOKEN_TASK, LoadedModel
from worker.inference.ner import group_entities, words_from_pieces

DEFAULT_BATCH_SIZE = 32


def encode(loaded: LoadedModel, texts: Sequence[str]) -> list[Any]:
    """One fast-tokenizer Encoding per text (ids, offsets into the text, word ids)."""
    if not texts:
        return []
    batch = loaded.tokenizer(list(texts), truncation=True, max_length=loaded.max_length)
    return list(batch.encodings)


def length_order(lengths: Sequence[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: (lengths[i], i))


def predict(
    loaded: LoadedModel, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[dict[str, Any]]:
    """Predictions for every text, in order: ``{"entities": [...]}`` or label/probabilities."""
    encodings = encode(loaded, texts)
    order = length_order([len(e.ids) for e in encodings])
    results: list[dict[str, Any]] = [{} for _ in texts]
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        outputs = forward(loaded, [texts[i] for i in chunk], [encodings[i] for i in chunk])
        for index, output in zip(chunk, outputs, strict=True):
            results[index] = output
    return results


def _pad(loaded: LoadedModel, encodings: Sequence[Any]) -> dict[str, torch.Tensor]:
    width = max(len(e.ids) for e in encodings)
    pad_id = loaded.tokenizer.pad_token_id or 0
    ids = [e.ids + [pad_id] * (width - len(e.ids)) for e in encodings]
    mask = [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encodings]
    inputs = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
    if "token_type_ids" in loaded.tokenizer.model_input_names:
        types = [e.type_ids + [0] * (width - len(e.ids)) for e in encodings]
        inputs["token_type_ids"] = torch.tensor(types)
    device = next(loaded.model.parameters(), torch.empty(0)).device
    return {key: value.to(device) for key, value in inputs.items()}


def forward(
    loaded: LoadedModel, texts: Sequence[str], encodings: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    """One forward pass over one batch (padded to its longest input)."""
    if not texts:
        return []
    encodings = encodings if encodings is not None else encode(loaded, texts)
    with torch.inference_mode():
        logits = loaded.model(**_pad(loaded, encodings)).logits.float()
        probabilities = torch.softmax(logits, dim=-1)
    if loaded.task == TOKEN_TASK:
        return _entities(loaded, texts, encodings, probabilities)
    return _classes(loaded, probabilities)


def _entities(
    loaded: LoadedModel, texts: Sequence[str], encodings: Sequence[Any], probs: torch.Tensor
) -> list[dict[str, Any]]:
    best, index = probs.max(dim=-1)
    results = []
    for row, (text, encoding) in enumerate(zip(texts, encodings, strict=True)):
        n = len(encoding.ids)
        labels = [loaded.id2label[i] for i in index[row, :n].tolist()]
        words = words_from_pieces(
            encoding.word_ids, encoding.offsets, labels, best[row, :n].tolist()
        )
        results.append({"entities": group_entities(text, words)})
    return results


def _classes(loaded: LoadedModel, probs: torch.Tensor) -> list[dict[str, Any]]:
    # float64 before normalising again, so the reported probabilities sum to 1 to ~1e-12.
    exact = probs.double()
    exact = exact / exact.sum(dim=-1, keepdim=True)
    results = []
    for row in exact.tolist():
        best = max(range(len(row)), key=row.__getitem__)
        results.append(
            {
                "label": loaded.id2label[best],
                "score": row[best],
                "probabilities": {loaded.id2label[i]: p for i, p in enumerate(row)},
            }
        )
    return results
