"""`finetune`: the token-classification (NER) fine-tuning engine as one plain function.

It reads like the steps of a training script: load data, pick labels, load the
model, tokenize and align, train (or resume), keep the best epoch, write a
Hugging Face model directory. It knows nothing of Celery, Flask or SQL; the
caller hears about progress, evaluations and checkpoints through callbacks.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from tunepool.data import TokenExample, read_token_examples
from worker.training.callbacks import TrainCallbacks
from worker.training.checkpoint import STATE_FILE, TrainerState, best_weights_in, load_checkpoint
from worker.training.evaluation import evaluate
from worker.training.loop import TrainingLoop
from worker.training.models import load_token_classifier, load_tokenizer, resolve_base_model
from worker.training.optimization import build_optimizer, build_scheduler
from worker.training.spec import TrainSpec
from worker.training.token_classification import check_label_subset, encode_sentences, infer_labels

# The API spells tasks with hyphens (as Hugging Face pipelines do); accept both spellings.
TASKS = ("token-classification", "token_classification", "ner")
METRICS = ("f1", "precision", "recall", "macro_f1", "strict_f1", "token_accuracy", "loss")
VALIDATION_FRACTION = 0.1
# Changing these between a checkpoint and its resumption would change the trajectory.
_RESUME_INDEPENDENT = {"log_every_steps", "checkpoint_every_steps"}


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path  # the final model, or the stop checkpoint when `stopped` is set
    metrics: dict[str, float]  # of the best epoch so far
    report: dict[str, Any]
    stopped: str | None
    global_step: int
    epochs_completed: int


def finetune(spec: TrainSpec, callbacks: TrainCallbacks) -> TrainResult:
    """Fine-tune `spec.base_model` for token classification; see the module docstring."""
    hp = spec.hyperparameters
    if spec.task not in TASKS:
        raise ValueError(f"task {spec.task!r} is not supported; expected one of {TASKS}")
    if hp.metric_for_best not in METRICS:
        raise ValueError(f"metric_for_best {hp.metric_for_best!r} is not one of {METRICS}")
    device = pick_device(spec.device)

    # Load data and fix the label set (sorted, "O" first) from the training split.
    train, validation, validation_source = _load_examples(spec)
    labels = infer_labels(train)
    check_label_subset(validation, labels, "validation data")
    id2label = dict(enumerate(labels))
    label2id = {label: index for index, label in id2label.items()}

    # Model and tokenizer; a config-only directory is initialised from the seed.
    base = resolve_base_model(spec.base_model)
    tokenizer = load_tokenizer(base)
    model = load_token_classifier(base, labels, hp.seed, device)

    # Tokenize once; labels go to first word pieces, -100 elsewhere.
    train_sentences = encode_sentences(train, tokenizer, label2id, hp.max_length)
    validation_sentences = encode_sentences(validation, tokenizer, label2id, hp.max_length)
    pad_token_id = int(tokenizer.pad_token_id)

    batches_per_epoch = math.ceil(len(train_sentences) / hp.batch_size)
    total_steps = math.ceil(batches_per_epoch / hp.gradient_accumulation) * hp.epochs
    optimizer = build_optimizer(model, hp, device)
    scheduler = build_scheduler(optimizer, total_steps, hp.warmup_ratio)
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    best_path = spec.output_dir / ".best" / "model.safetensors"
    state = TrainerState(labels=labels, hyperparameters=hp.to_dict())
    if spec.resume_from is not None:
        state = _resume(spec, model, optimizer, scheduler, device, labels, best_path)
    else:
        shutil.rmtree(best_path.parent, ignore_errors=True)

    def run_evaluation() -> tuple[dict[str, float], dict[str, Any]]:
        return evaluate(
            model,
            validation,
            validation_sentences,
            id2label,
            batch_size=hp.batch_size * 2,
            pad_token_id=pad_token_id,
            device=device,
        )

    loop = TrainingLoop(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        hp=hp,
        state=state,
        sentences=train_sentences,
        pad_token_id=pad_token_id,
        evaluate=run_evaluation,
        callbacks=callbacks,
        device=device,
        output_dir=spec.output_dir,
        total_steps=total_steps,
    )
    stopped = loop.run()
    if stopped is not None:
        assert loop.last_checkpoint is not None
        return TrainResult(
            model_dir=loop.last_checkpoint,
            metrics=state.best_metrics,
            report=state.best_report,
            stopped=stopped,
            global_step=state.global_step,
            epochs_completed=state.epochs_completed,
        )
    data = {
        "train_sentences": len(train),
        "validation_sentences": len(validation),
        "validation_source": validation_source,
    }
    report = _write_final_model(spec, model, tokenizer, state, best_path, data, device)
    return TrainResult(
        model_dir=spec.output_dir,
        metrics=state.best_metrics,
        report=report,
        stopped=None,
        global_step=state.global_step,
        epochs_completed=state.epochs_completed,
    )


def _write_final_model(
    spec: TrainSpec,
    model: Any,
    tokenizer: Any,
    state: TrainerState,
    best_path: Path,
    data: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Save the best epoch (not the last) in Hugging Face format, with its report."""
    if best_path.exists():
        load_model(model, str(best_path), device=str(device))
    model.save_pretrained(spec.output_dir)
    tokenizer.save_pretrained(spec.output_dir)
    report = {
        "metric_for_best": spec.hyperparameters.metric_for_best,
        "best_epoch": state.best_epoch,
        "best_step": state.best_step,
        "metrics": state.best_metrics,
        "report": state.best_report,
        "history": state.eval_history,
        "labels": state.labels,
        "data": data,
    }
    _write_json(spec.output_dir / "eval_report.json", report)
    _write_json(spec.output_dir / STATE_FILE, asdict(state))
    # The final model supersedes every checkpoint of this run.
    shutil.rmtree(best_path.parent, ignore_errors=True)
    shutil.rmtree(spec.output_dir / "checkpoints", ignore_errors=True)
    return report


def pick_device(name: str) -> torch.device:
    """ "auto" is CUDA when present; on CUDA, fp32 matmuls outside autocast use TF32."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        # TF32: nearly free speed on Ampere and later, precision ample for fine-tuning.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _load_examples(spec: TrainSpec) -> tuple[list[TokenExample], list[TokenExample], str]:
    train = read_token_examples(spec.train_file, spec.train_format)
    if spec.validation_file is not None:
        validation_format = spec.validation_format or spec.train_format
        return train, read_token_examples(spec.validation_file, validation_format), "file"
    if len(train) < 2:
        raise ValueError("need at least 2 training sentences to split off a validation set")
    # A seeded split: the same spec always holds out the same sentences.
    order = list(range(len(train)))
    random.Random(spec.hyperparameters.seed).shuffle(order)
    held_out = set(order[: max(1, round(len(train) * VALIDATION_FRACTION))])
    kept = [example for index, example in enumerate(train) if index not in held_out]
    validation = [example for index, example in enumerate(train) if index in held_out]
    return kept, validation, "split"


def _resume(
    spec: TrainSpec,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
    labels: list[str],
    best_path: Path,
) -> TrainerState:
    assert spec.resume_from is not None
    checkpoint = Path(spec.resume_from)
    saved = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    if saved["labels"] != labels:
        raise ValueError(f"checkpoint labels {saved['labels']} differ from the data's {labels}")
    current = spec.hyperparameters.to_dict()
    changed = sorted(
        key
        for key, value in saved["hyperparameters"].items()
        if key not in _RESUME_INDEPENDENT and current.get(key) != value
    )
    if changed:
        raise ValueError(f"cannot resume with changed hyperparameters: {', '.join(changed)}")
    state = load_checkpoint(checkpoint, model, optimizer, scheduler, device)
    state.hyperparameters = current
    # The best epoch's weights: stored in the checkpoint, or they are the current ones.
    shutil.rmtree(best_path.parent, ignore_errors=True)
    stored_best = best_weights_in(checkpoint)
    if stored_best is not None or state.best_step == state.global_step:
        best_path.parent.mkdir(parents=True)
        if stored_best is not None:
            shutil.copyfile(stored_best, best_path)
        else:
            save_model(model, str(best_path))
    return state


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, default=_json_default), encoding="utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
