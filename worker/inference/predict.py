"""Batched prediction: tokenize once, sort by length, pad each batch to its own longest input.

Sorting keeps sentences of similar length together, so short inputs do not pay for
the padding of long ones; results come back in the caller's order. An input is a text
or a list of words (``worker.inference.inputs``); words are tokenized as given
(``is_split_into_words``, as the training engine does), never re-split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from worker.inference.inputs import ModelInput, as_text
from worker.inference.model import TOKEN_TASK, LoadedModel
from worker.inference.ner import group_entities, labelled_words, words_from_pieces

DEFAULT_BATCH_SIZE = 32


def encode(loaded: LoadedModel, inputs: Sequence[ModelInput]) -> list[Any]:
    """One fast-tokenizer Encoding per input: ids, offsets, and word ids (into the given
    words for a list of words). A sequence classifier reads words as their text."""
    if loaded.task != TOKEN_TASK:
        inputs = [as_text(item) for item in inputs]
    encodings: list[Any] = [None] * len(inputs)
    for split in (False, True):
        at = [i for i, item in enumerate(inputs) if isinstance(item, str) != split]
        if not at:
            continue
        batch = loaded.tokenizer(
            [inputs[i] if not split else list(inputs[i]) for i in at],
            is_split_into_words=split,
            truncation=True,
            max_length=loaded.max_length,
        )
        for i, encoding in zip(at, batch.encodings, strict=True):
            encodings[i] = encoding
    return encodings


def length_order(lengths: Sequence[int]) -> list[int]:
    return sorted(range(len(lengths)), key=lambda i: (lengths[i], i))


def predict(
    loaded: LoadedModel, inputs: Sequence[ModelInput], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[dict[str, Any]]:
    """Predictions for every input, in order: ``{"entities": [...]}`` (plus ``labels`` and
    ``scores``, one per word, for a list of words) or label/score/probabilities."""
    encodings = encode(loaded, inputs)
    order = length_order([len(e.ids) for e in encodings])
    results: list[dict[str, Any]] = [{} for _ in inputs]
    for begin in range(0, len(order), batch_size):
        chunk = order[begin : begin + batch_size]
        outputs = forward(loaded, [inputs[i] for i in chunk], [encodings[i] for i in chunk])
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
    loaded: LoadedModel, inputs: Sequence[ModelInput], encodings: Sequence[Any] | None = None
) -> list[dict[str, Any]]:
    """One forward pass over one batch (padded to its longest input)."""
    if not inputs:
        return []
    encodings = encodings if encodings is not None else encode(loaded, inputs)
    with torch.inference_mode():
        logits = loaded.model(**_pad(loaded, encodings)).logits.float()
        probabilities = torch.softmax(logits, dim=-1)
    if loaded.task == TOKEN_TASK:
        return _entities(loaded, inputs, encodings, probabilities)
    return _classes(loaded, probabilities)


def _entities(
    loaded: LoadedModel, inputs: Sequence[ModelInput], encodings: Sequence[Any], probs: torch.Tensor
) -> list[dict[str, Any]]:
    best, index = probs.max(dim=-1)
    results: list[dict[str, Any]] = []
    for row, (item, encoding) in enumerate(zip(inputs, encodings, strict=True)):
        n = len(encoding.ids)
        labels = [loaded.id2label[i] for i in index[row, :n].tolist()]
        scores = best[row, :n].tolist()
        if isinstance(item, str):
            words = words_from_pieces(encoding.word_ids, encoding.offsets, labels, scores)
            results.append({"entities": group_entities(item, words)})
            continue
        given = labelled_words(encoding.word_ids, labels, scores, len(item))
        results.append(
            {
                "labels": [word.label for word in given],
                "scores": [round(float(word.score), 6) for word in given],
                "entities": group_entities(item, given),
            }
        )
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
