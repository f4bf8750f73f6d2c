"""What differs between tasks: reading the data, the model head, batches and scores.

`read_task_data` parses the files and fixes the splits and the label set (no
model needed, so the engine knows the data size before choosing "auto"
hyperparameters); `prepare_task` loads the model and tokenizer, encodes the
examples and returns the collate and evaluate functions that the one training
loop calls.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tunepool.data import DataError, read_token_examples
from tunepool.data.text_files import read_text_documents, read_text_examples
from worker.training.collate import PAD_MULTIPLE, pad_batch
from worker.training.compact_embedding import used_token_ids
from worker.training.evaluation import evaluate
from worker.training.masked_lm import (
    encode_documents,
    evaluate_masked_lm,
    fixed_evaluation_batches,
    mask_batch,
    masking_tokens,
)
from worker.training.models import load_task_model, load_tokenizer
from worker.training.sequence_classification import (
    check_text_labels,
    encode_texts,
    evaluate_texts,
    infer_text_labels,
    pad_texts,
    stratified_split,
)
from worker.training.spec import Hyperparameters, TrainSpec
from worker.training.token_classification import check_label_subset, encode_sentences, infer_labels

Evaluator = Callable[[], tuple[dict[str, float], dict[str, Any]]]
Collate = Callable[[Sequence[Any]], dict[str, torch.Tensor]]


@dataclass
class TaskData:
    """Parsed examples (token, text or document records), split, with labels."""

    task: str
    train: list[Any]
    validation: list[Any]
    validation_source: str  # "file" or "split"
    labels: list[str]  # empty for masked-lm


@dataclass
class PreparedTask:
    model: Any
    tokenizer: Any
    train_items: Sequence[Any]  # encoded; each has `input_ids`
    collate: Collate
    evaluate: Evaluator
    # Every token id the run can look up (train, validation, special tokens): only these
    # embedding rows are trained (worker.training.compact_embedding). None: all rows.
    vocabulary: torch.Tensor | None = None


def read_task_data(task: str, spec: TrainSpec, hp: Hyperparameters) -> TaskData:
    def read(path: Any, fmt: str) -> list[Any]:
        if task == "token-classification":
            return list(read_token_examples(path, fmt))
        if task == "sequence-classification":
            return list(read_text_examples(path, fmt))
        return list(read_text_documents(path, fmt))

    train = read(spec.train_file, spec.train_format)
    source = "file"
    if spec.validation_file is not None:
        validation = read(spec.validation_file, spec.validation_format or spec.train_format)
    else:
        if len(train) < 2:
            raise DataError("need at least 2 training examples to split off a validation set")
        source = "split"
        if task == "sequence-classification":
            train, validation = stratified_split(train, hp.validation_split, hp.seed)
        else:
            train, validation = _random_split(train, hp.validation_split, hp.seed)
    labels: list[str] = []
    if task == "token-classification":
        labels = infer_labels(train)
        check_label_subset(validation, labels, "validation data")
    elif task == "sequence-classification":
        labels = infer_text_labels(train)
        if len(labels) < 2:
            raise DataError(f"the training data has one label only ({labels[0]!r}); need two")
        check_text_labels(validation, labels, "validation data")
    return TaskData(task, train, validation, source, labels)


def _random_split(examples: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded split: the same spec always holds out the same examples."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held_out = set(order[: max(1, round(len(examples) * fraction))])
    kept = [example for index, example in enumerate(examples) if index not in held_out]
    validation = [example for index, example in enumerate(examples) if index in held_out]
    return kept, validation


def prepare_task(
    data: TaskData, base: str, hp: Hyperparameters, device: torch.device
) -> PreparedTask:
    tokenizer = load_tokenizer(base)
    model = load_task_model(data.task, base, data.labels, hp.seed, device)
    pad_token_id = int(tokenizer.pad_token_id)
    id2label = dict(enumerate(data.labels))
    label2id = {label: index for index, label in id2label.items()}
    eval_batch = hp.batch_size * 2
    multiple = PAD_MULTIPLE if device.type == "cuda" else 1  # see collate.py

    if data.task == "token-classification":
        train_sentences = encode_sentences(data.train, tokenizer, label2id, hp.max_length)
        validation_sentences = encode_sentences(data.validation, tokenizer, label2id, hp.max_length)
        return PreparedTask(
            model,
            tokenizer,
            train_sentences,
            lambda items: pad_batch(items, pad_token_id, multiple),
            lambda: evaluate(
                model,
                data.validation,
                validation_sentences,
                id2label,
                batch_size=eval_batch,
                pad_token_id=pad_token_id,
                device=device,
            ),
            _vocabulary(tokenizer, train_sentences, validation_sentences),
        )
    if data.task == "sequence-classification":
        train_texts = encode_texts(data.train, tokenizer, label2id, hp.max_length)
        validation_texts = encode_texts(data.validation, tokenizer, label2id, hp.max_length)
        return PreparedTask(
            model,
            tokenizer,
            train_texts,
            lambda items: pad_texts(items, pad_token_id, multiple),
            lambda: evaluate_texts(
                model, validation_texts, id2label, eval_batch, pad_token_id, device
            ),
            _vocabulary(tokenizer, train_texts, validation_texts),
        )
    tokens = masking_tokens(tokenizer)
    train_documents = encode_documents(data.train, tokenizer, hp.max_length)
    validation_batches = fixed_evaluation_batches(
        encode_documents(data.validation, tokenizer, hp.max_length), tokens, eval_batch, hp.seed
    )
    return PreparedTask(
        model,
        tokenizer,
        train_documents,
        lambda items: mask_batch(items, tokens, None, multiple),
        lambda: evaluate_masked_lm(model, validation_batches, device),
    )


def _vocabulary(tokenizer: Any, *encoded: Sequence[Any]) -> torch.Tensor:
    return used_token_ids(
        (item.input_ids for items in encoded for item in items), tokenizer.all_special_ids
    )
