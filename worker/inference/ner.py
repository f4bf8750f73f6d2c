"""Token predictions -> entity spans over the original input (a string, or given words).

Like the Transformers pipeline's "simple" aggregation, but word pieces are always
merged into whole words first: a word's label is its first piece's (the only piece
the training loss sees), so a word is never split across two entities. Offsets come
from the fast tokenizer's offset mapping, which refers to the original string even
after lowercasing and accent stripping, so ``text[start:end]`` is exactly the span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Word:
    start: int
    end: int
    label: str
    score: float


def words_from_pieces(
    word_ids: Sequence[int | None],
    offsets: Sequence[tuple[int, int]],
    labels: Sequence[str],
    scores: Sequence[float],
) -> list[Word]:
    """One ``Word`` per word id: span from its first to its last piece, label of the first."""
    words: list[Word] = []
    current: int | None = None
    for position, word_id in enumerate(word_ids):
        if word_id is None:  # [CLS], [SEP], padding
            continue
        start, end = offsets[position]
        if word_id != current:
            current = word_id
            words.append(Word(start, end, labels[position], scores[position]))
        else:
            words[-1].end = max(words[-1].end, end)
    return words


def labelled_words(
    word_ids: Sequence[int | None],
    labels: Sequence[str],
    scores: Sequence[float],
    word_count: int,
) -> list[Word]:
    """One ``Word`` per given word, in order, spanning word indices [i, i + 1), labelled
    by its first piece as in training. A word with no piece in the input (cut off by
    max_length, or only characters the tokenizer drops) is "O" with score 0, as the
    training engine's evaluation counts it: every given word gets exactly one label."""
    words = [Word(i, i + 1, "O", 0.0) for i in range(word_count)]
    seen: set[int] = set()
    for position, word_id in enumerate(word_ids):
        if word_id is None or word_id in seen:
            continue
        seen.add(word_id)
        words[word_id] = Word(word_id, word_id + 1, labels[position], scores[position])
    return words


def _split(label: str) -> tuple[str, str | None]:
    """("B"|"I"|"O", type). Labels without a BIO prefix count as inside their type."""
    if label == "O":
        return "O", None
    if len(label) > 2 and label[1] in "-_" and label[0] in "BIES":
        prefix = "B" if label[0] in "BS" else "I"
        return prefix, label[2:]
    return "I", label


def group_entities(source: str | Sequence[str], words: Sequence[Word]) -> list[dict[str, Any]]:
    """BIO words -> entity spans. B starts an entity; I continues one of its type or starts one.

    ``source`` is the text the spans index, or the given words (spans are word indices
    then, and an entity's text is its words joined by single spaces)."""
    entities: list[dict[str, Any]] = []
    open_type: str | None = None
    scores: list[float] = []

    def close() -> None:
        if open_type is not None and entities:
            entities[-1]["score"] = sum(scores) / len(scores)

    for word in words:
        prefix, kind = _split(word.label)
        if kind is None:
            close()
            open_type = None
            continue
        if prefix == "I" and kind == open_type:
            entities[-1]["end"] = word.end
            scores.append(word.score)
            continue
        close()
        open_type, scores = kind, [word.score]
        entities.append({"type": kind, "start": word.start, "end": word.end, "score": 0.0})
    close()
    for entity in entities:
        span = source[entity["start"] : entity["end"]]
        entity["text"] = span if isinstance(span, str) else " ".join(span)
        entity["score"] = round(float(entity["score"]), 6)
    return entities
