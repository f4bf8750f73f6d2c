"""`finetune`: the fine-tuning engine as one plain function, for every task.

Tasks: token classification (NER), sequence classification and masked-LM
continued pre-training; `worker.training.tasks` holds what differs between them.
It reads like the steps of a training script: load data, pick labels, choose the
"auto" hyperparameters, load the model, tokenize, train (or resume), keep the best
epoch, write a Hugging Face model directory. It knows nothing of Celery, Flask or SQL; the
caller hears about progress, evaluations and checkpoints through callbacks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from worker.training.callbacks import TrainCallbacks
from worker.training.checkpoint import STATE_FILE, TrainerState, best_weights_in, load_checkpoint
from worker.training.compact_embedding import compact_input_embeddings
from worker.training.distributed import DistContext, DistributedCallbacks
from worker.training.loop import TrainingLoop
from worker.training.model_card import model_card
from worker.training.models import resolve_base_model
from worker.training.optimization import build_optimizer, build_scheduler
from worker.training.spec import TrainSpec, canonical_task
from worker.training.tasks import TaskData, prepare_task, read_task_data

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
    # The hyperparameters as trained with, "auto" values resolved.
    hyperparameters_used: dict[str, Any] = dataclasses.field(default_factory=dict)


def finetune(spec: TrainSpec, callbacks: TrainCallbacks) -> TrainResult:
    """Fine-tune `spec.base_model` for `spec.task`; see the module docstring.

    With `spec.world_size` > 1 this process becomes rank 0 of a data-parallel run.
    """
    if spec.world_size > 1:
        from worker.training.distributed import run_data_parallel

        return cast(TrainResult, run_data_parallel(spec, callbacks))
    return finetune_rank(spec, callbacks, None)


def finetune_rank(
    spec: TrainSpec, callbacks: TrainCallbacks, context: DistContext | None
) -> TrainResult:
    """One process's share of a run: the whole run when `context` is None."""
    task = canonical_task(spec.task)
    # The same check the API made at submit ("f1" means the task's headline score).
    hp = spec.hyperparameters.for_task(task)
    device = pick_device(spec.device)

    # Parse and split the data, fix the label set, then choose "auto" values by its size.
    data = read_task_data(task, spec, hp)
    hp = hp.resolve_auto(task, len(data.train))
    labels = data.labels

    # Model and tokenizer (a config-only directory is initialised from the seed);
    # examples are tokenized once (NER labels go to first word pieces, -100 elsewhere).
    base = resolve_base_model(spec.base_model)
    prepared = prepare_task(data, base, hp, device)
    model, tokenizer = prepared.model, prepared.tokenizer
    # Only the embedding rows of tokens in the data get gradients: train just those.
    compact = (
        compact_input_embeddings(model, prepared.vocabulary)
        if prepared.vocabulary is not None
        else None
    )
    forward_model = model
    if context is not None:
        forward_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        callbacks = DistributedCallbacks(callbacks, context, hp.log_every_steps, device)

    batches_per_epoch = math.ceil(len(prepared.train_items) / hp.batch_size)
    total_steps = math.ceil(batches_per_epoch / hp.gradient_accumulation) * hp.epochs
    optimizer = build_optimizer(model, hp, device)
    if compact is not None:
        optimizer.register_step_post_hook(compact.after_step)
    scheduler = build_scheduler(optimizer, total_steps, hp.warmup_ratio)
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    best_path = spec.output_dir / ".best" / "model.safetensors"
    state = TrainerState(labels=labels, hyperparameters=hp.to_dict())
    if spec.resume_from is not None:
        state = _resume(spec, hp, model, optimizer, scheduler, device, labels, best_path)
    else:
        shutil.rmtree(best_path.parent, ignore_errors=True)

    loop = TrainingLoop(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        hp=hp,
        state=state,
        sentences=prepared.train_items,
        collate=prepared.collate,
        evaluate=prepared.evaluate,
        callbacks=callbacks,
        device=device,
        output_dir=spec.output_dir,
        total_steps=total_steps,
        forward_model=forward_model,
        context=context,
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
            hyperparameters_used=hp.to_dict(),
        )
    report: dict[str, Any] = {}
    if context is None or context.is_main:
        report = _write_final_model(
            spec, hp, model, tokenizer, state, best_path, _data_summary(data), device
        )
    return TrainResult(
        model_dir=spec.output_dir,
        metrics=state.best_metrics,
        report=report,
        stopped=None,
        global_step=state.global_step,
        epochs_completed=state.epochs_completed,
        hyperparameters_used=hp.to_dict(),
    )


def _data_summary(data: TaskData) -> dict[str, Any]:
    noun = {"token-classification": "sentences", "sequence-classification": "examples"}
    unit = noun.get(data.task, "documents")
    return {
        f"train_{unit}": len(data.train),
        f"validation_{unit}": len(data.validation),
        "validation_source": data.validation_source,
    }


def _write_final_model(
    spec: TrainSpec,
    hp: Any,
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
        "task": canonical_task(spec.task),
        "metric_for_best": hp.metric_for_best,
        "best_epoch": state.best_epoch,
        "best_step": state.best_step,
        "metrics": state.best_metrics,
        "report": state.best_report,
        "history": state.eval_history,
        "labels": state.labels,
        "data": data,
        "hyperparameters": hp.to_dict(),
    }
    _write_json(spec.output_dir / "eval_report.json", report)
    readme = model_card(spec.base_model, json.loads(json.dumps(report, default=_json_default)))
    (spec.output_dir / "README.md").write_text(readme, encoding="utf-8")
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


def _resume(
    spec: TrainSpec,
    hp: Any,
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
    current = hp.to_dict()
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
