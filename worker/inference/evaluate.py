"""Entity F1 of the serving path on labelled sentences (what `compress` compares).

Sentences are scored exactly as they are served: words joined by single spaces,
predicted through ``predict``; each predicted span is mapped back to the words it
covers and compared with the gold BIO spans (exact match of words and type).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.inference.model import LoadedModel
from worker.inference.ner import Word, group_entities
from worker.inference.predict import predict


def sentence_text(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of a tokenised sentence and each token's character span in it."""
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


def _word_index(spans: Sequence[tuple[int, int]], char: int) -> int:
    for index, (start, end) in enumerate(spans):
        if start <= char < end:
            return index
    return len(spans) - 1


def entity_f1(
    loaded: LoadedModel, examples: Sequence[Any], batch_size: int = 32
) -> dict[str, float]:
    """Micro precision, recall and F1 over entities; ``examples`` have .tokens and .tags."""
    texts, spans = zip(*(sentence_text(e.tokens) for e in examples), strict=True)
    predictions = predict(loaded, list(texts), batch_size)
    correct = predicted_n = gold_n = 0
    for example, span, prediction in zip(examples, spans, predictions, strict=True):
        gold = gold_entities(example.tags)
        found = {
            (_word_index(span, e["start"]), _word_index(span, e["end"] - 1), e["type"])
            for e in prediction["entities"]
        }
        correct += len(gold & found)
        predicted_n += len(found)
        gold_n += len(gold)
    precision = correct / predicted_n if predicted_n else 0.0
    recall = correct / gold_n if gold_n else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "entities": float(gold_n)}
