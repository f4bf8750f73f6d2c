"""Dataset statistics for token-classification data, shown before training starts.

Everything here is JSON-serialisable so the API can return it as an upload
report. The tokenizer is optional and duck-typed (any callable accepting
`is_split_into_words=True`), which keeps this module free of transformers.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any

from tunepool.data.bio import entity_type, invalid_transition
from tunepool.data.token_files import TokenExample

# How many line numbers to list for each kind of problem: enough to find the
# pattern, short enough for an API response.
MAX_EXAMPLES = 10
_BUCKET_EDGES = (8, 16, 32, 64, 128, 256, 512)


def token_dataset_stats(
    examples: Iterable[TokenExample],
    tokenizer: Any = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Counts, label frequencies and data-quality findings for a token dataset.

    One pass, in memory that does not grow with the data but for 24 bytes a sentence
    (the duplicate check): an upload's examples are read, counted and dropped.
    """
    tag_counts: Counter[str] = Counter()
    # Where each label first occurs: lets a job name the line of a validation label
    # unknown to the training data without reading the file again.
    first_line: dict[str, int] = {}
    entity_counts: Counter[str] = Counter()
    invalid: list[dict[str, Any]] = []
    invalid_count = 0
    empty_tokens = LineList()
    lengths = LengthSummary()
    duplicates = DuplicateFinder()
    pieces = _WordPieces(tokenizer, max_length) if tokenizer is not None else None
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
                empty_tokens.add(example.line)
            previous = tag
        lengths.add(len(example.tokens))
        duplicates.add(tuple(example.tokens), tuple(example.tags), example.line)
        if pieces is not None:
            pieces.add(example)
    stats: dict[str, Any] = {
        "sentences": lengths.count,
        "tokens": lengths.total,
        "entities": dict(sorted(entity_counts.items())),
        "labels": dict(sorted(tag_counts.items(), key=lambda item: (item[0] != "O", item[0]))),
        "label_first_line": dict(sorted(first_line.items())),
        "invalid_bio": {"count": invalid_count, "examples": invalid},
        "sentence_length_words": lengths.result(),
        "duplicates": duplicates.result(),
        "empty_tokens": empty_tokens.result(),
    }
    if pieces is not None:
        stats.update(pieces.result())
    return stats


class LineList:
    """How many, and the first MAX_EXAMPLES line numbers of, one kind of finding."""

    def __init__(self) -> None:
        self.count = 0
        self.lines: list[int] = []

    def add(self, line: int) -> None:
        self.count += 1
        if len(self.lines) < MAX_EXAMPLES:
            self.lines.append(line)

    def result(self) -> dict[str, Any]:
        return {"count": self.count, "lines": list(self.lines)}


class LengthSummary:
    """Minimum, maximum, mean and histogram of lengths, kept as they are added."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.low = 0
        self.high = 0
        self.histogram: Counter[str] = Counter()

    def add(self, length: int) -> None:
        self.low = length if self.count == 0 else min(self.low, length)
        self.high = max(self.high, length)
        self.count += 1
        self.total += length
        self.histogram[_bucket(length)] += 1

    def result(self) -> dict[str, Any]:
        if not self.count:
            return {"min": 0, "max": 0, "mean": 0.0, "histogram": {}}
        order = [_bucket(edge) for edge in _BUCKET_EDGES] + [f">{_BUCKET_EDGES[-1]}"]
        return {
            "min": self.low,
            "max": self.high,
            "mean": round(self.total / self.count, 2),
            "histogram": {name: self.histogram[name] for name in order if self.histogram[name]},
        }


def length_summary(lengths: Iterable[int]) -> dict[str, Any]:
    summary = LengthSummary()
    for length in lengths:
        summary.add(length)
    return summary.result()


def _bucket(length: int) -> str:
    low = 1
    for edge in _BUCKET_EDGES:
        if length <= edge:
            return f"{low}-{edge}"
        low = edge + 1
    return f">{_BUCKET_EDGES[-1]}"


_MASK = 2**64 - 1


class DuplicateFinder:
    """Repeated examples; those repeated with different labels are label noise.

    An example is kept as 64-bit hashes of its key (the words) and of its labels plus
    its line (24 bytes, in arrays), not as its words; duplicates are found by sorting
    once at the end. Two different keys share a hash with odds of about n^2 / 2^65.
    """

    def __init__(self, conflicts: str = "conflicting_tags") -> None:
        self.conflicts = conflicts
        self._tokens = array("Q")
        self._tags = array("Q")
        self._lines = array("Q")

    def add(self, key: Hashable, labels: Hashable, line: int) -> None:
        self._tokens.append(hash(key) & _MASK)
        self._tags.append(hash(labels) & _MASK)
        self._lines.append(line)

    def result(self) -> dict[str, Any]:
        if not self._lines:
            return {"count": 0, "lines": [], self.conflicts: {"count": 0, "lines": []}}
        import numpy as np

        tokens = np.frombuffer(self._tokens, dtype=np.uint64)
        tags = np.frombuffer(self._tags, dtype=np.uint64)
        lines = np.frombuffer(self._lines, dtype=np.uint64)
        # Stable: within a group of equal sentences the first in the file comes first.
        order = np.argsort(tokens, kind="stable")
        ordered = tokens[order]
        repeat = ordered[1:] == ordered[:-1]  # position i+1 repeats position i
        group = np.cumsum(np.concatenate(([True], ~repeat))) - 1
        first_of_group = order[np.flatnonzero(np.concatenate(([True], ~repeat)))]
        repeated = order[1:][repeat]
        original = first_of_group[group[1:][repeat]]
        repeated_in_file_order = np.sort(repeated)
        conflicting = np.sort(repeated[tags[repeated] != tags[original]])
        return {
            "count": int(repeated.size),
            "lines": [int(line) for line in lines[repeated_in_file_order[:MAX_EXAMPLES]]],
            self.conflicts: {
                "count": int(conflicting.size),
                "lines": [int(line) for line in lines[conflicting[:MAX_EXAMPLES]]],
            },
        }


class _WordPieces:
    """Sentence lengths in word pieces (special tokens included) and truncation losses."""

    def __init__(self, tokenizer: Any, max_length: int | None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.lengths = LengthSummary()
        self.cut_words = 0
        self.cut_labelled = 0
        self.cut_lines: list[int] = []
        self.no_piece_words = 0

    def add(self, example: TokenExample) -> None:
        encoding = self.tokenizer(example.tokens, is_split_into_words=True)
        self.lengths.add(len(encoding["input_ids"]))
        word_ids = getattr(encoding, "word_ids", None)
        if word_ids is None:
            return  # a slow tokenizer: lengths only, no word alignment
        ids = word_ids()
        # Words whose first piece lands beyond max_length - 1 (room for the final
        # special token) are cut off; so are words that produce no piece at all.
        first_piece = {word: position for position, word in reversed(list(enumerate(ids)))}
        self.no_piece_words += sum(
            1 for word in range(len(example.tokens)) if word not in first_piece
        )
        if self.max_length is None:
            return
        lost = [
            w
            for w, position in first_piece.items()
            if w is not None and position >= self.max_length - 1
        ]
        labelled = [w for w in lost if example.tags[w] != "O"]
        self.cut_words += len(lost)
        self.cut_labelled += len(labelled)
        if labelled and len(self.cut_lines) < MAX_EXAMPLES:
            self.cut_lines.append(example.line)

    def result(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "sentence_length_pieces": self.lengths.result(),
            "words_without_pieces": self.no_piece_words,
        }
        if self.max_length is not None:
            result["truncation"] = {
                "max_length": self.max_length,
                "words_cut": self.cut_words,
                "labelled_words_cut": self.cut_labelled,
                "lines": self.cut_lines,
            }
        return result
