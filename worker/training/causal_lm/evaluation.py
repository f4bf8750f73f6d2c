"""Held-out loss and perplexity, and greedy answers scored when they are checkable.

Loss is the token-level mean over the trained (assistant) tokens of the validation
set, computed on packed rows like training. When every validation answer is a
short label (one to three words) or JSON, the model answers each prompt greedily
and the answers are scored: accuracy and macro-F1 over labels; for JSON, exact
match and, for lists of {"text", "type"} objects (entity extraction), entity F1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from tunepool.data.chat import ChatExample
from worker.training.causal_lm.batches import Batch, micro_batches, summed_loss, target_count
from worker.training.causal_lm.rendering import EncodedChat

_GENERATION_BATCH = 16


@torch.no_grad()
def heldout_loss(
    model: torch.nn.Module,
    items: Sequence[EncodedChat],
    budget: int,
    packed: bool,
    collate: Callable[[Sequence[EncodedChat]], Batch],
    device: torch.device,
) -> dict[str, float]:
    """Mean loss over the assistant tokens of `items`, batched like training."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), device=device)
    count = 0
    lengths = [len(item.input_ids) for item in items]
    for group in micro_batches(range(len(items)), lengths, budget, packed):
        chosen = [items[i] for i in group]
        total += summed_loss(model, collate(chosen), device)
        count += target_count(chosen)
    model.train(was_training)
    loss = total.item() / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}


def answer_kind(examples: Sequence[ChatExample]) -> str | None:
    """ "label" or "json" when every final answer is one; None otherwise."""
    answers = [example.messages[-1].content.strip() for example in examples]
    if not answers:
        return None
    # JSON first: a compact '[{"text":"Paris"}]' is also short enough to look like a label.
    if all(isinstance(_json(answer), list | dict) for answer in answers):
        return "json"
    if all(len(answer.split()) <= 3 and len(answer) <= 40 for answer in answers):
        return "label"
    return None


@torch.no_grad()
def generate_answers(
    model: Any, tokenizer: Any, examples: Sequence[ChatExample], max_new_tokens: int
) -> list[str]:
    """Greedy answers to each conversation's last prompt, in batches left-padded."""
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues at the right edge of every row
    answers: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(examples), _GENERATION_BATCH):
        chunk = examples[start : start + _GENERATION_BATCH]
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in example.messages[:-1]],
                tokenize=False,
                add_generation_prompt=True,
            )
            for example in chunk
        ]
        batch = tokenizer(prompts, add_special_tokens=False, return_tensors="pt", padding=True)
        output = model.generate(
            **batch.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = output[:, batch["input_ids"].shape[1] :]
        answers.extend(
            text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)
        )
    tokenizer.padding_side = side
    model.train(was_training)
    return answers


def answer_report(
    model: Any, tokenizer: Any, examples: Sequence[ChatExample], limit: int, samples: int
) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Scores of greedy answers to the first `limit` examples when answers are labels
    or JSON, and the first `samples` answers quoted (prompt, expected, answer)."""
    kind = answer_kind(examples)
    count = max(limit if kind is not None else 0, samples)
    chosen = list(examples[:count])
    if not chosen:
        return {}, []
    # Room for the longest expected answer; free text gets a short excerpt only.
    room = {"label": 8, "json": 128}.get(kind or "", 64)
    answers = generate_answers(model, tokenizer, chosen, max_new_tokens=room)
    golds = [example.messages[-1].content for example in chosen]
    scores = score_answers(kind, answers[:limit], golds[:limit]) if kind and limit else {}
    quoted = [
        {"prompt": _last_prompt(example)[:500], "expected": gold, "answer": answer}
        for example, gold, answer in zip(chosen[:samples], golds, answers, strict=False)
    ]
    return scores, quoted


def score_answers(kind: str, predicted: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    if kind == "label":
        return label_scores(predicted, gold)
    exact = sum(_json(p) == _json(g) for p, g in zip(predicted, gold, strict=True))
    scores = {"exact_match": exact / max(len(gold), 1)}
    if all(_entities(_json(g)) is not None for g in gold):
        scores["entity_f1"] = entity_f1(predicted, gold)
    return scores


def label_scores(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1 over the gold labels, and F1 per label (`f1_<label>`)."""
    norm_gold = [g.strip().lower() for g in gold]
    known = sorted(set(norm_gold))
    norm_pred = [_label_in(p, known) for p in predicted]
    scores = {
        "accuracy": sum(p == g for p, g in zip(norm_pred, norm_gold, strict=True)) / len(gold)
    }
    f1s = []
    for label in sorted(set(norm_gold)):
        tp = sum(p == g == label for p, g in zip(norm_pred, norm_gold, strict=True))
        fp = sum(p == label != g for p, g in zip(norm_pred, norm_gold, strict=True))
        fn = sum(g == label != p for p, g in zip(norm_pred, norm_gold, strict=True))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        scores[f"f1_{label}"] = f1
        f1s.append(f1)
    scores["macro_f1"] = sum(f1s) / len(f1s)
    return scores


def entity_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Micro F1 over (text, type) pairs; an unparseable answer predicts nothing."""
    tp = fp = fn = 0
    for p, g in zip(predicted, gold, strict=True):
        pred = _entities(_json(p)) or set()
        true = _entities(_json(g)) or set()
        tp += len(pred & true)
        fp += len(pred - true)
        fn += len(true - pred)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _label_in(answer: str, labels: Sequence[str]) -> str:
    """The one known label an answer names ("Spam." or "This is spam" -> "spam"), else
    the answer itself: a base model asked zero-shot rarely answers with a bare word."""
    words = set(re.findall(r"[\w-]+", answer.lower()))
    named = [label for label in labels if label in words]
    return named[0] if len(named) == 1 else answer.strip().lower()


def _last_prompt(example: ChatExample) -> str:
    return example.messages[-2].content if len(example.messages) > 1 else ""


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _entities(value: Any) -> set[tuple[str, str]] | None:
    if not isinstance(value, list):
        return None
    found: set[tuple[str, str]] = set()
    for item in value:
        if not isinstance(item, dict) or not {"text", "type"} <= item.keys():
            return None
        found.add((str(item["text"]), str(item["type"])))
    return found
