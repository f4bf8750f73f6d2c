"""Dataset statistics for text classification and unlabeled corpora, before training.

JSON-serialisable like `token_dataset_stats`: counts, label frequencies (the
imbalance a user should see before choosing a metric), text lengths in words,
and duplicates, which for classification also reveal conflicting labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from tunepool.data.stats import MAX_EXAMPLES, length_summary
from tunepool.data.text_files import TextDocument, TextExample


def text_dataset_stats(examples: Sequence[TextExample]) -> dict[str, Any]:
    labels = Counter(example.label for example in examples)
    lengths = [len(example.text.split()) for example in examples]
    first_seen: dict[str, TextExample] = {}
    duplicates: list[int] = []
    conflicting: list[int] = []
    for example in examples:
        key = " ".join(example.text.split()).lower()
        original = first_seen.setdefault(key, example)
        if original is example:
            continue
        duplicates.append(example.line)
        if original.label != example.label:
            conflicting.append(example.line)
    return {
        "examples": len(examples),
        "labels": dict(sorted(labels.items())),
        "label_first_line": {
            label: min(e.line for e in examples if e.label == label) for label in sorted(labels)
        },
        "text_length_words": length_summary(lengths),
        "duplicates": {
            "count": len(duplicates),
            "lines": duplicates[:MAX_EXAMPLES],
            "conflicting_labels": {"count": len(conflicting), "lines": conflicting[:MAX_EXAMPLES]},
        },
    }


def corpus_stats(documents: Sequence[TextDocument]) -> dict[str, Any]:
    lengths = [len(document.text.split()) for document in documents]
    seen: set[str] = set()
    duplicates: list[int] = []
    for document in documents:
        if document.text in seen:
            duplicates.append(document.line)
        seen.add(document.text)
    return {
        "documents": len(documents),
        "words": sum(lengths),
        "document_length_words": length_summary(lengths),
        "duplicates": {"count": len(duplicates), "lines": duplicates[:MAX_EXAMPLES]},
    }
