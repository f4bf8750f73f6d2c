"""Text classification: labels, the stratified split, encoding, batching and scores.

A label set is inferred from the training texts (sorted, so the same data always
gives the same ids) and evaluation data may not use a label the model cannot
predict. Scores are accuracy, per-class precision/recall/F1, their macro average
and the confusion matrix (rows: true label, columns: predicted).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tunepool.data import DataError
from tunepool.data.text_files import TextExample
from worker.training.batching import sorted_batches
from worker.training.collate import PAD_MULTIPLE, padded_length
from worker.training.evaluation import autocast
from worker.training.metrics import token_report

_TOKENIZE_CHUNK = 1000


@dataclass(frozen=True)
class EncodedText:
    input_ids: list[int]
    label: int


def infer_text_labels(examples: Sequence[TextExample]) -> list[str]:
    return sorted({example.label for example in examples})


def check_text_labels(examples: Sequence[TextExample], labels: Sequence[str], source: str) -> None:
    known = set(labels)
    for example in examples:
        if example.label not in known:
            raise DataError(
                f"{source}: label {example.label!r} does not occur in the training data",
                example.line,
            )


def stratified_split(
    examples: Sequence[TextExample], fraction: float, seed: int
) -> tuple[list[TextExample], list[TextExample]]:
    """Hold out `fraction` of each label's examples (at least one of any label with
    two or more), chosen by `seed`; both parts keep the file order."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_label[example.label].append(index)
    rng = random.Random(seed)
    held_out: set[int] = set()
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        count = round(len(indices) * fraction)
        if len(indices) >= 2:
            count = min(max(count, 1), len(indices) - 1)
        held_out.update(indices[:count])
    kept = [example for index, example in enumerate(examples) if index not in held_out]
    validation = [example for index, example in enumerate(examples) if index in held_out]
    return kept, validation


def encode_texts(
    examples: Sequence[TextExample], tokenizer: Any, label2id: dict[str, int], max_length: int
) -> list[EncodedText]:
    encoded: list[EncodedText] = []
    for start in range(0, len(examples), _TOKENIZE_CHUNK):
        chunk = examples[start : start + _TOKENIZE_CHUNK]
        batch = tokenizer([e.text for e in chunk], truncation=True, max_length=max_length)
        for example, ids in zip(chunk, batch["input_ids"], strict=True):
            encoded.append(EncodedText(list(ids), label2id[example.label]))
    return encoded


def pad_texts(
    items: Sequence[EncodedText], pad_token_id: int, multiple: int = PAD_MULTIPLE
) -> dict[str, torch.Tensor]:
    """input_ids and attention_mask padded (see collate.py); one label per row."""
    width = padded_length(max(len(item.input_ids) for item in items), multiple)
    input_ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        input_ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids, dtype=torch.long)
        attention_mask[row, : len(item.input_ids)] = 1
    labels = torch.tensor([item.label for item in items], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@torch.inference_mode()
def evaluate_texts(
    model: torch.nn.Module,
    items: Sequence[EncodedText],
    id2label: dict[int, str],
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, Any]]:
    was_training = model.training
    model.eval()
    predicted = [0] * len(items)
    loss_sum = torch.zeros((), device=device)
    for indices in sorted_batches([len(item.input_ids) for item in items], batch_size):
        batch = pad_texts([items[i] for i in indices], pad_token_id)
        with autocast(device):
            output = model(**{key: value.to(device) for key, value in batch.items()})
        loss_sum += output.loss.float() * len(indices)
        for index, value in zip(indices, output.logits.argmax(dim=-1).tolist(), strict=True):
            predicted[index] = value
    model.train(was_training)
    truth = [id2label[item.label] for item in items]
    guesses = [id2label[value] for value in predicted]
    metrics, report = classification_scores(truth, guesses, [id2label[i] for i in sorted(id2label)])
    metrics["loss"] = float(loss_sum) / len(items) if items else 0.0
    return metrics, report


def classification_scores(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Flat metrics and the full report (per class, macro, confusion matrix)."""
    per_class = token_report(truth, predicted)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for true_label, guess in zip(truth, predicted, strict=True):
        matrix[index[true_label]][index[guess]] += 1
    macro = per_class["macro avg"]
    metrics = {
        "accuracy": float(per_class["accuracy"]),
        "macro_precision": float(macro["precision"]),
        "macro_recall": float(macro["recall"]),
        "macro_f1": float(macro["f1"]),
    }
    for label in labels:
        if label in per_class:
            metrics[f"f1[{label}]"] = float(per_class[label]["f1"])
    report = {
        "classes": {label: per_class[label] for label in labels if label in per_class},
        "macro avg": macro,
        "accuracy": per_class["accuracy"],
        "confusion_matrix": {"labels": list(labels), "rows_true_columns_predicted": matrix},
        "examples": len(truth),
    }
    return metrics, report
