"""Turning words and BIO tags into word-piece inputs, and predictions back into tags.

The alignment is the part a naive loop gets wrong: a word such as
"Tunepoolification" becomes several pieces (tune ##pool ##ification), and only
the first carries the word's label. The other pieces, the special tokens and the
padding get -100 so the loss and the token-level metrics ignore them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunepool.data import DataError, TokenExample

IGNORE_INDEX = -100  # torch.nn.CrossEntropyLoss's default ignore_index
_TOKENIZE_CHUNK = 1000  # sentences per tokenizer call: fast batching, bounded memory


@dataclass(frozen=True)
class EncodedSentence:
    """Model inputs for one sentence, plus the map from positions back to words."""

    input_ids: list[int]
    labels: list[int]
    # For each position, the word it came from, or -1 for special tokens. Only the
    # first piece of a word is recorded; the later pieces are also -1.
    first_piece_words: list[int]
    num_words: int


def infer_labels(examples: Sequence[TokenExample]) -> list[str]:
    """The training label set: sorted, with "O" first (and always present, since
    words cut off by max_length are predicted as O)."""
    tags = {tag for example in examples for tag in example.tags}
    tags.discard("O")
    return ["O", *sorted(tags)]


def check_label_subset(
    examples: Sequence[TokenExample], labels: Sequence[str], source: str
) -> None:
    """Reject validation data that uses a label the model cannot predict."""
    known = set(labels)
    for example in examples:
        for tag in example.tags:
            if tag not in known:
                raise DataError(
                    f"{source}: label {tag!r} does not occur in the training data", example.line
                )


def encode_sentences(
    examples: Sequence[TokenExample],
    tokenizer: Any,
    label2id: dict[str, int],
    max_length: int,
) -> list[EncodedSentence]:
    """Tokenize with a fast tokenizer and align labels to first word pieces."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("token classification needs a fast tokenizer (word_ids() alignment)")
    encoded: list[EncodedSentence] = []
    for start in range(0, len(examples), _TOKENIZE_CHUNK):
        chunk = examples[start : start + _TOKENIZE_CHUNK]
        batch = tokenizer(
            [example.tokens for example in chunk],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        for index, example in enumerate(chunk):
            encoded.append(
                _align(example, batch["input_ids"][index], batch.word_ids(index), label2id)
            )
    return encoded


def _align(
    example: TokenExample,
    input_ids: list[int],
    word_ids: list[int | None],
    label2id: dict[str, int],
) -> EncodedSentence:
    labels: list[int] = []
    first_piece_words: list[int] = []
    previous: int | None = None
    for word in word_ids:
        if word is None or word == previous:
            # A special token, or a later piece of the word just labelled.
            labels.append(IGNORE_INDEX)
            first_piece_words.append(-1)
        else:
            labels.append(label2id[example.tags[word]])
            first_piece_words.append(word)
        previous = word
    return EncodedSentence(list(input_ids), labels, first_piece_words, len(example.tokens))


def word_predictions(
    sentence: EncodedSentence, predicted_ids: Sequence[int], id2label: dict[int, str]
) -> list[str]:
    """One predicted tag per word. Words with no piece in the input (cut off by
    max_length, or characters the tokenizer drops) are predicted "O", so they
    still count against recall instead of disappearing from the evaluation."""
    tags = ["O"] * sentence.num_words
    for position, word in enumerate(sentence.first_piece_words):
        if word >= 0:
            tags[word] = id2label[int(predicted_ids[position])]
    return tags
