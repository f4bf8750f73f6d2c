"""Entity-level (seqeval) and token-level scores for BIO tagging.

Entity level is the score that matters for NER: an entity counts only when its
type and both boundaries are right, so "New York City" predicted as "New York"
is a miss even though two of three tokens are right. It is given in seqeval's
default (conlleval-compatible) mode and in strict IOB2 mode, which differ on
stray I- tags. The token-level report is over real word labels only: the caller
passes first-piece labels, never -100 positions.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2


def entity_report(truth: list[list[str]], predicted: list[list[str]]) -> dict[str, Any]:
    """Per-type precision/recall/F1/support plus micro/macro averages, in both modes."""
    # With no entity at all seqeval averages an empty slice (numpy warns, gives NaN);
    # _plain turns NaN into 0.0 so the report stays valid JSON.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        default = classification_report(truth, predicted, output_dict=True, zero_division=0)
        strict = classification_report(
            truth, predicted, output_dict=True, zero_division=0, mode="strict", scheme=IOB2
        )
    return {"default": _plain(default), "strict_iob2": _plain(strict)}


def token_report(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Per-label precision/recall/F1 over word labels, plus accuracy and averages."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predictions differ in length")
    true_counts = Counter(truth)
    predicted_counts = Counter(predicted)
    correct = Counter(t for t, p in zip(truth, predicted, strict=True) if t == p)
    report: dict[str, Any] = {}
    for label in sorted(set(true_counts) | set(predicted_counts)):
        report[label] = _scores(correct[label], predicted_counts[label], true_counts[label])
    labels = [label for label in report if true_counts[label]]
    report["macro avg"] = {
        key: sum(report[label][key] for label in labels) / len(labels) if labels else 0.0
        for key in ("precision", "recall", "f1")
    } | {"support": len(truth)}
    report["accuracy"] = sum(correct.values()) / len(truth) if truth else 0.0
    return report


def summary_metrics(entities: dict[str, Any], tokens: dict[str, Any]) -> dict[str, float]:
    """The flat numbers shown in progress and used to pick the best epoch."""
    micro = entities["default"].get("micro avg", {})
    macro = entities["default"].get("macro avg", {})
    strict = entities["strict_iob2"].get("micro avg", {})
    return {
        "precision": float(micro.get("precision", 0.0)),
        "recall": float(micro.get("recall", 0.0)),
        "f1": float(micro.get("f1-score", 0.0)),
        "macro_f1": float(macro.get("f1-score", 0.0)),
        "strict_f1": float(strict.get("f1-score", 0.0)),
        "token_accuracy": float(tokens["accuracy"]),
    }


def _scores(correct: int, predicted: int, actual: int) -> dict[str, Any]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def _plain(report: dict[str, Any]) -> dict[str, Any]:
    """seqeval returns numpy scalars (NaN for empty averages); JSON needs finite
    Python floats and ints."""
    return {
        name: {key: _number(key, value) for key, value in row.items()}
        for name, row in report.items()
    }


def _number(key: str, value: Any) -> float | int:
    if key == "support":
        return int(value)
    number = float(value)
    return 0.0 if math.isnan(number) else number
