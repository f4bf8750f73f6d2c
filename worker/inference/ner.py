"""Token predictions -> entity spans over the original input string.

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


def _split(label: str) -> tuple[str, str | None]:
    """("B"|"I"|"O", type). Labels without a BIO prefix count as inside their type."""
    if label == "O":
        return "O", None
    if len(label) > 2 and label[1] in "-_" and label[0] in "BIES":
        prefix = "B" if label[0] in "BS" else "I"
        return prefix, label[2:]
    return "I", label


def group_entities(text: str, words: Sequence[Word]) -> list[dict[str, Any]]:
    """BIO words -> entity spans. B starts an entity; I continues one of its type or starts one."""
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
        entity["text"] = text[entity["start"] : entity["end"]]
        entity["score"] = round(float(entity["score"]), 6)
    return entities
