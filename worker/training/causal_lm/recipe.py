"""`finetune_causal_lm`: supervised fine-tuning of a chat model, as one readable recipe.

The steps, top to bottom: read the chat files; resolve the base model (SmolLM2 is
converted once into the model cache); render every example with the model's own
chat template (loss on assistant turns only); make the model trainable (LoRA by
default); train on packed rows (or length-grouped padded batches), checkpointing
the adapter with the optimizer, scheduler, RNG and data position; score held-out
loss each epoch and greedy answers at the end; write the adapter directory, which
plain `peft.PeftModel.from_pretrained(base, adapter_dir)` loads.

Like the encoder engine it knows no Celery, Flask or SQL: it reports through
`TrainCallbacks` and returns the encoder engine's `TrainResult`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tunepool.data.chat import ChatExample, read_chat_examples
from tunepool.data.errors import DataError
from worker.training.batching import epoch_seed
from worker.training.callbacks import TrainCallbacks
from worker.training.causal_lm import batches as packing
from worker.training.causal_lm.balance import balanced_epoch, label_shares
from worker.training.causal_lm.base_models import resolve_causal_base
from worker.training.causal_lm.checkpoint import load_sft_checkpoint
from worker.training.causal_lm.estimate import token_statistics
from worker.training.causal_lm.evaluation import answer_kind, answer_report, heldout_loss
from worker.training.causal_lm.model_setup import load_trainable_model, parameter_counts
from worker.training.causal_lm.rendering import EncodedChat, encode_chat
from worker.training.causal_lm.sft_loop import SFTLoop
from worker.training.causal_lm.spec import (
    SFTSpec,
    auto_micro_batch_tokens,
    auto_packing,
    check_device_support,
)
from worker.training.checkpoint import TrainerState
from worker.training.engine import TrainResult, pick_device
from worker.training.optimization import build_scheduler

ADAPTER_DIR = "adapter"  # LoRA: adapter_model.safetensors + adapter_config.json
MODEL_DIR = "model"  # full fine-tuning: the whole model
MERGED_DIR = "merged"


def finetune_causal_lm(spec: SFTSpec, callbacks: TrainCallbacks) -> TrainResult:
    hp = spec.hyperparameters
    device = pick_device(spec.device)
    check_device_support(hp, device.type)  # before anything slow happens

    # 1. Data: chat files in any supported format; a held-out share when no validation file.
    train = read_chat_examples(spec.train_file, spec.train_format).examples
    if spec.validation_file is not None:
        validation = read_chat_examples(spec.validation_file, spec.validation_format).examples
    else:
        train, validation = split_validation(train, hp.validation_split, hp.seed)

    # 2. Tokenizer and rendering with the model's own template.
    from transformers import AutoTokenizer

    base = resolve_causal_base(spec.base_model, spec.model_cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train_items, dropped = encode_all(tokenizer, train, hp.max_length)
    lost = set(dropped)
    kept = [example for example in train if example.line not in lost]  # one per item
    valid_items, _ = encode_all(tokenizer, validation, hp.max_length)
    if not train_items:
        raise DataError("no training example keeps an assistant token within max_length")
    packed = auto_packing(hp, device.type)
    budget = auto_micro_batch_tokens(hp, device.type)
    lengths = [len(item.input_ids) for item in train_items]

    labels = (
        [example.messages[-1].content.strip() for example in kept]
        if hp.label_balance and answer_kind(kept) == "label"
        else None
    )

    def order(seed: int) -> list[list[int]]:
        epoch = (
            balanced_epoch(labels, hp.label_balance, seed)
            if labels is not None
            else list(range(len(lengths)))
        )
        return packing.step_batches(epoch, lengths, hp.batch_size, seed, grouped=not packed)

    def split(step: list[int]) -> list[list[int]]:
        return packing.micro_batches(step, lengths, budget, packed)

    def collate(items: Any) -> packing.Batch:
        if packed:
            return packing.collate_packed(items)
        # A checkpointed layer drops the shared prefix's cache (see `collate_padded`).
        return packing.collate_padded(
            items, tokenizer.pad_token_id, share_prefix=not hp.gradient_checkpointing
        )

    # 3. Model, optimizer and schedule; a resumed run restores all of them.
    model = load_trainable_model(base, hp, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay, fused=True
    )
    total_steps = sum(len(order(epoch_seed(hp.seed, epoch))) for epoch in range(hp.epochs))
    scheduler = build_scheduler(optimizer, total_steps, hp.warmup_ratio)
    state = TrainerState(hyperparameters=hp.to_dict())
    if spec.resume_from is not None:
        state = _resume(spec, model, optimizer, scheduler, device)

    # 4. Train; held-out loss and perplexity after every epoch.
    def evaluate(epoch: int) -> dict[str, float]:
        if not valid_items:
            return {}
        return heldout_loss(model, valid_items, budget, packed, collate, device)

    spec.output_dir.mkdir(parents=True, exist_ok=True)
    loop = SFTLoop(
        model, optimizer, scheduler, hp, state, train_items, order, split, collate, evaluate,
        callbacks, device, spec.output_dir, total_steps,
    )  # fmt: skip
    stopped = loop.run()
    if stopped is not None:
        assert loop.last_checkpoint is not None
        return TrainResult(
            loop.last_checkpoint, {}, {}, stopped, state.global_step, state.epochs_completed,
            hp.to_dict(),
        )  # fmt: skip

    # 5. Greedy answers, scored when they are checkable; a few quoted in the report.
    final = {
        k: v for k, v in (state.eval_history or [{}])[-1].items() if k not in ("epoch", "step")
    }
    scores, samples = answer_report(
        model, tokenizer, validation, hp.generation_eval_limit, hp.sample_generations
    )
    final.update(scores)

    # 6. Output: the adapter (or the whole model), the tokenizer, the report.
    out = spec.output_dir / (MODEL_DIR if hp.method == "full" else ADAPTER_DIR)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if hp.merge_adapter and hp.method == "lora":
        model.merge_and_unload().save_pretrained(spec.output_dir / MERGED_DIR)
        tokenizer.save_pretrained(spec.output_dir / MERGED_DIR)
    report = {
        "task": "causal-lm",
        "base_model": spec.base_model,
        "method": hp.method,
        "metrics": final,
        "history": state.eval_history,
        "samples": samples,
        "data": {
            "train": token_statistics(train_items, hp.max_length),
            "validation": token_statistics(valid_items, hp.max_length),
            "dropped_without_trained_tokens": dropped,
            "packed": packed,
            # Each label's share of an epoch when label_balance drew them (else the data's).
            "label_shares": label_shares(Counter(labels), hp.label_balance) if labels else None,
            "micro_batch_tokens": budget,
        },
        "throughput": {
            "train_tokens": loop.trained_tokens,
            "train_seconds": round(loop.train_seconds, 3),
            "tokens_per_s": loop.trained_tokens / max(loop.train_seconds, 1e-9),
        },
        **parameter_counts(model),
        "hyperparameters": hp.to_dict(),
    }
    (spec.output_dir / "eval_report.json").write_text(json.dumps(report, indent=2), "utf-8")
    (spec.output_dir / "trainer_state.json").write_text(json.dumps(asdict(state)), "utf-8")
    return TrainResult(
        out, final, report, None, state.global_step, state.epochs_completed, hp.to_dict()
    )


def split_validation(
    examples: list[ChatExample], share: float, seed: int
) -> tuple[list[ChatExample], list[ChatExample]]:
    """A seeded random share held out (at least one example when there are 10 or more)."""
    if len(examples) < 10 or share <= 0:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = max(1, round(len(examples) * share))
    chosen = set(order[:held])
    kept = [e for i, e in enumerate(examples) if i not in chosen]
    return kept, [e for i, e in enumerate(examples) if i in chosen]


def encode_all(
    tokenizer: Any, examples: list[ChatExample], max_length: int
) -> tuple[list[EncodedChat], list[int]]:
    """Encoded examples, and the lines of those truncated down to no trained token."""
    items, dropped = [], []
    for example in examples:
        item = encode_chat(tokenizer, example, max_length)
        # Only a target after position 0 counts: the first token is never predicted.
        if any(label != -100 for label in item.labels[1:]):
            items.append(item)
        else:
            dropped.append(example.line)
    return items, dropped


def _resume(
    spec: SFTSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
) -> TrainerState:
    assert spec.resume_from is not None
    checkpoint = Path(spec.resume_from)
    saved = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    current = spec.hyperparameters.to_dict()
    independent = {"log_every_steps", "checkpoint_every_steps"}
    changed = sorted(
        key
        for key, value in saved["hyperparameters"].items()
        if key not in independent and json.loads(json.dumps(current.get(key))) != value
    )
    if changed:
        raise ValueError(f"cannot resume with changed hyperparameters: {', '.join(changed)}")
    state = load_sft_checkpoint(checkpoint, model, optimizer, scheduler, device)
    state.hyperparameters = current
    return state
