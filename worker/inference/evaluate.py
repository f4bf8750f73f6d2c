"""Scores of the serving path on labelled examples (what `compress` and `evaluate` compare).

Token classification: entity F1. The gold words are predicted as given (one label per
word, ``worker.inference.inputs``), never re-split, so predicted and gold spans count
the same words; they match on exact words and type. Sequence classification: accuracy
and macro F1, as the training engine reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.inference.model import TOKEN_TASK, LoadedModel
from worker.inference.ner import Word, group_entities
from worker.inference.predict import predict


def sentence_text(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of a tokenised sentence and each token's character span in it (benchmarks
    time the raw-text path with it)."""
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), spans


def gold_entities(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """(first word, last word, type) of each gold entity, by the same BIO rules as serving."""
    words = [Word(i, i + 1, tag, 1.0) for i, tag in enumerate(tags)]
    dummy = " " * (len(tags) + 1)
    return {(e["start"], e["end"] - 1, e["type"]) for e in group_entities(dummy, words)}


def entity_f1(
    loaded: LoadedModel, examples: Sequence[Any], batch_size: int = 32
) -> dict[str, float]:
    """Micro precision, recall and F1 over entities; ``examples`` have .tokens and .tags."""
    predictions = predict(loaded, [list(e.tokens) for e in examples], batch_size)
    correct = predicted_n = gold_n = 0
    for example, prediction in zip(examples, predictions, strict=True):
        gold = gold_entities(example.tags)
        found = {(e["start"], e["end"] - 1, e["type"]) for e in prediction["entities"]}
        correct += len(gold & found)
        predicted_n += len(found)
        gold_n += len(gold)
    precision = correct / predicted_n if predicted_n else 0.0
    recall = correct / gold_n if gold_n else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "entities": float(gold_n)}


def class_scores(
    loaded: LoadedModel, examples: Sequence[Any], batch_size: int = 32
) -> dict[str, float]:
    """Accuracy, macro F1 and per-class F1; ``examples`` have .text and .label."""
    from worker.training.sequence_classification import classification_scores

    predicted = [p["label"] for p in predict(loaded, [e.text for e in examples], batch_size)]
    truth = [e.label for e in examples]
    labels = list(loaded.labels) + sorted({*truth} - set(loaded.labels))
    metrics, _report = classification_scores(truth, predicted, labels)
    return {**metrics, "examples": float(len(examples))}


def served_scores(loaded: LoadedModel, examples: Sequence[Any]) -> dict[str, float]:
    """The model's scores on labelled examples of its own task, predicted as it is served."""
    if loaded.task == TOKEN_TASK:
        return entity_f1(loaded, examples)
    return class_scores(loaded, examples)
