"""Dataset statistics for token-classification data, shown before training starts.

Everything here is JSON-serialisable so the API can return it as an upload
report. The tokenizer is optional and duck-typed (any callable accepting
`is_split_into_words=True`), which keeps this module free of transformers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from tunepool.data.bio import entity_type, invalid_transition
from tunepool.data.token_files import TokenExample

# How many line numbers to list for each kind of problem: enough to find the
# pattern, short enough for an API response.
MAX_EXAMPLES = 10
_BUCKET_EDGES = (8, 16, 32, 64, 128, 256, 512)


def token_dataset_stats(
    examples: Sequence[TokenExample],
    tokenizer: Any = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Counts, label frequencies and data-quality findings for a token dataset."""
    tag_counts: Counter[str] = Counter()
    # Where each label first occurs: lets a job name the line of a validation label
    # unknown to the training data without reading the file again.
    first_line: dict[str, int] = {}
    entity_counts: Counter[str] = Counter()
    invalid: list[dict[str, Any]] = []
    invalid_count = 0
    empty_tokens: list[int] = []
    for example in examples:
        tag_counts.update(example.tags)
        for tag in example.tags:
            first_line.setdefault(tag, example.line)
        previous: str | None = None
        for index, (token, tag) in enumerate(zip(example.tokens, example.tags, strict=True)):
            if tag.startswith("B-") or invalid_transition(previous, tag):
                # seqeval's default mode counts a stray I-X as an entity start too.
                entity_counts[str(entity_type(tag))] += 1
            if invalid_transition(previous, tag):
                invalid_count += 1
                if len(invalid) < MAX_EXAMPLES:
                    invalid.append(
                        {"line": example.line, "token": index, "tag": tag, "after": previous}
                    )
            if not token.strip():
                empty_tokens.append(example.line)
            previous = tag
    lengths = [len(example.tokens) for example in examples]
    stats: dict[str, Any] = {
        "sentences": len(examples),
        "tokens": sum(lengths),
        "entities": dict(sorted(entity_counts.items())),
        "labels": dict(sorted(tag_counts.items(), key=lambda item: (item[0] != "O", item[0]))),
        "label_first_line": dict(sorted(first_line.items())),
        "invalid_bio": {"count": invalid_count, "examples": invalid},
        "sentence_length_words": length_summary(lengths),
        "duplicates": _duplicates(examples),
        "empty_tokens": {"count": len(empty_tokens), "lines": empty_tokens[:MAX_EXAMPLES]},
    }
    if tokenizer is not None:
        stats.update(_word_piece_stats(examples, tokenizer, max_length))
    return stats


def length_summary(lengths: Sequence[int]) -> dict[str, Any]:
    if not lengths:
        return {"min": 0, "max": 0, "mean": 0.0, "histogram": {}}
    histogram: Counter[str] = Counter(_bucket(length) for length in lengths)
    order = [_bucket(edge) for edge in _BUCKET_EDGES] + [f">{_BUCKET_EDGES[-1]}"]
    return {
        "min": min(lengths),
        "max": max(lengths),
        "mean": round(sum(lengths) / len(lengths), 2),
        "histogram": {name: histogram[name] for name in order if histogram[name]},
    }


def _bucket(length: int) -> str:
    low = 1
    for edge in _BUCKET_EDGES:
        if length <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f">{_BUCKET_EDGES[-1]}"


def _duplicates(examples: Iterable[TokenExample]) -> dict[str, Any]:
    """Repeated sentences; those repeated with different tags are label noise."""
    first_seen: dict[tuple[str, ...], TokenExample] = {}
    lines: list[int] = []
    conflicting: list[int] = []
    for example in examples:
        key = tuple(example.tokens)
        original = first_seen.setdefault(key, example)
        if original is example:
            continue
        lines.append(example.line)
        if original.tags != example.tags:
            conflicting.append(example.line)
    return {
        "count": len(lines),
        "lines": lines[:MAX_EXAMPLES],
        "conflicting_tags": {"count": len(conflicting), "lines": conflicting[:MAX_EXAMPLES]},
    }


def _word_piece_stats(
    examples: Sequence[TokenExample], tokenizer: Any, max_length: int | None
) -> dict[str, Any]:
    """Sentence lengths in word pieces (special tokens included) and truncation losses."""
    piece_lengths: list[int] = []
    cut_words = cut_labelled = 0
    cut_lines: list[int] = []
    no_piece_words = 0
    for example in examples:
        encoding = tokenizer(example.tokens, is_split_into_words=True)
        piece_lengths.append(len(encoding["input_ids"]))
        word_ids = getattr(encoding, "word_ids", None)
        if word_ids is None:
            continue  # a slow tokenizer: lengths only, no word alignment
        ids = word_ids()
        # Words whose first piece lands beyond max_length - 1 (room for the final
        # special token) are cut off; so are words that produce no piece at all.
        first_piece = {word: position for position, word in reversed(list(enumerate(ids)))}
        no_piece_words += sum(1 for word in range(len(example.tokens)) if word not in first_piece)
        if max_length is None:
            continue
        lost = [
            w for w, position in first_piece.items() if w is not None and position >= max_length - 1
        ]
        labelled = [w for w in lost if example.tags[w] != "O"]
        cut_words += len(lost)
        cut_labelled += len(labelled)
        if labelled and len(cut_lines) < MAX_EXAMPLES:
            cut_lines.append(example.line)
    result: dict[str, Any] = {
        "sentence_length_pieces": length_summary(piece_lengths),
        "words_without_pieces": no_piece_words,
    }
    if max_length is not None:
        result["truncation"] = {
            "max_length": max_length,
            "words_cut": cut_words,
            "labelled_words_cut": cut_labelled,
            "lines": cut_lines,
        }
    return result
