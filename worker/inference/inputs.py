"""What a model is asked about: a text, or a sentence already split into words.

A text (``str``) is split by the model's own pre-tokenizer, and its entities are
character spans: ``text[start:end]`` is the entity. Words (a list of ``str``, as a
CoNLL or tokens-JSONL dataset holds them, or as a caller has split them) are kept
exactly as given: a token-classification model returns one label per word, and its
entities are word spans, so ``words[start:end]`` is the entity. Re-splitting the
caller's words would make spans that no longer match them (and cost F1 against
gold words, issue 20). No torch here: the API's batcher measures inputs with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# A text, or the words of one sentence.
ModelInput = str | Sequence[str]


def is_words(item: ModelInput) -> bool:
    return not isinstance(item, str)


def input_length(item: ModelInput) -> int:
    """Characters, as the text of the input would have them: what batches are sorted by."""
    if isinstance(item, str):
        return len(item)
    return sum(len(word) + 1 for word in item)


def as_text(item: ModelInput) -> str:
    """The input as one text (words joined by single spaces), for sequence classification,
    which is trained on texts."""
    return item if isinstance(item, str) else " ".join(item)


def read_inputs(path: Path, dataset_task: str, fmt: str) -> list[ModelInput]:
    """The inputs of a dataset, whatever task it was uploaded for (its labels are ignored):
    token-classification data gives words, sequence-classification data and unlabeled
    text give texts. Raises ``DataError`` naming the line, like the upload did."""
    if dataset_task == "token-classification":
        from tunepool.data.token_files import read_token_examples

        return [example.tokens for example in read_token_examples(path, fmt)]
    if dataset_task == "sequence-classification":
        from tunepool.data.text_files import read_text_examples

        return [example.text for example in read_text_examples(path, fmt)]
    if dataset_task == "masked-lm":
        from tunepool.data.text_files import read_text_documents

        return [document.text for document in read_text_documents(path, fmt)]
    raise ValueError(f"datasets of task {dataset_task!r} cannot be read as inputs")


def read_examples(task: str, path: Path, fmt: str) -> list[Any]:
    """Labelled examples of a model's task (what `evaluate` and `compress` score on):
    token examples (.tokens, .tags) or text examples (.text, .label)."""
    if task == "token-classification":
        from tunepool.data.token_files import read_token_examples

        return list(read_token_examples(path, fmt))
    if task == "sequence-classification":
        from tunepool.data.text_files import read_text_examples

        return list(read_text_examples(path, fmt))
    raise ValueError(f"{task} models have no labelled examples to be scored on")
