"""Dataset statistics for text classification and unlabeled corpora, before training.

JSON-serialisable like `token_dataset_stats`: counts, label frequencies (the
imbalance a user should see before choosing a metric), text lengths in words,
and duplicates, which for classification also reveal conflicting labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from tunepool.data.stats import DuplicateFinder, LengthSummary
from tunepool.data.text_files import TextDocument, TextExample


def text_dataset_stats(examples: Iterable[TextExample]) -> dict[str, Any]:
    """One pass, in memory that does not grow with the data but for 24 bytes an example."""
    labels: Counter[str] = Counter()
    first_line: dict[str, int] = {}
    lengths = LengthSummary()
    duplicates = DuplicateFinder("conflicting_labels")
    for example in examples:
        labels[example.label] += 1
        first_line.setdefault(example.label, example.line)
        words = example.text.split()
        lengths.add(len(words))
        duplicates.add(" ".join(words).lower(), example.label, example.line)
    return {
        "examples": lengths.count,
        "labels": dict(sorted(labels.items())),
        "label_first_line": {label: first_line[label] for label in sorted(labels)},
        "text_length_words": lengths.result(),
        "duplicates": duplicates.result(),
    }


def corpus_stats(documents: Iterable[TextDocument]) -> dict[str, Any]:
    lengths = LengthSummary()
    duplicates = DuplicateFinder()
    for document in documents:
        lengths.add(len(document.text.split()))
        duplicates.add(document.text, "", document.line)
    found = duplicates.result()
    return {
        "documents": lengths.count,
        "words": lengths.total,
        "document_length_words": lengths.result(),
        "duplicates": {"count": found["count"], "lines": found["lines"]},
    }
