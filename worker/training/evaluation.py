"""One validation pass: predict, map pieces back to words, score.

Entity scores compare whole sentences of gold tags with one prediction per word
(words that lost their pieces to truncation are predicted "O"). The token-level
report uses only positions whose label is not -100, i.e. first pieces of words.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch

from tunepool.data import TokenExample
from worker.training.batching import sorted_batches
from worker.training.collate import pad_batch
from worker.training.metrics import entity_report, summary_metrics, token_report
from worker.training.token_classification import IGNORE_INDEX, EncodedSentence, word_predictions


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    examples: Sequence[TokenExample],
    sentences: Sequence[EncodedSentence],
    id2label: dict[int, str],
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Flat metrics (f1, strict_f1, ..., loss) and the full report for one pass."""
    was_training = model.training
    model.eval()
    predicted_words: list[list[str]] = [[] for _ in sentences]
    token_truth: list[str] = []
    token_predicted: list[str] = []
    loss_sum = torch.zeros((), device=device)
    label_count = 0
    for batch_indices in sorted_batches([len(s.input_ids) for s in sentences], batch_size):
        batch = pad_batch([sentences[i] for i in batch_indices], pad_token_id)
        labels = batch["labels"]
        with autocast(device):
            output = model(**{key: value.to(device) for key, value in batch.items()})
        counted = int((labels != IGNORE_INDEX).sum())
        loss_sum += output.loss.float() * counted  # model loss is a mean over labels
        label_count += counted
        predictions = output.logits.argmax(dim=-1).cpu()
        for row, index in enumerate(batch_indices):
            sentence_predictions = predictions[row].tolist()
            predicted_words[index] = word_predictions(
                sentences[index], sentence_predictions, id2label
            )
            for position, label in enumerate(sentences[index].labels):
                if label != IGNORE_INDEX:
                    token_truth.append(id2label[label])
                    token_predicted.append(id2label[int(sentence_predictions[position])])
    model.train(was_training)
    entities = entity_report([list(example.tags) for example in examples], predicted_words)
    tokens = token_report(token_truth, token_predicted)
    metrics = summary_metrics(entities, tokens)
    metrics["loss"] = float(loss_sum) / label_count if label_count else 0.0
    report = {"entity": entities, "token": tokens, "sentences": len(examples)}
    return metrics, report


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (no loss scaling needed, unlike fp16); full fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
