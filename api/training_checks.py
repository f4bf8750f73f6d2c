"""Fine-tuning job checks: hyperparameters, label agreement and the validation report.

Kept apart from `api/jobs.py` so the jobs blueprint stays about jobs. The report is
computed by a serving worker (it needs the base model's tokenizer), over the serving
transport (`api/serving.py`).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from api.context import db
from api.errors import invalid
from storage.models import Dataset
from storage.workers import has_cuda_worker
from tunepool.hyperparameters import HyperparameterError, Hyperparameters
from tunepool.serving_protocol import Kind
from tunepool.sft_hyperparameters import SFTHyperparameters, SFTSettingsError

CAUSAL_LM = "causal-lm"


def check_hyperparameters(values: dict[str, Any], task: str) -> None:
    """The worker's own typed check, at submit: 422 naming ``hyperparameters.<name>``."""
    if task == CAUSAL_LM:
        check_sft_hyperparameters(values)
        return
    try:
        Hyperparameters.from_dict(values).for_task(task)
    except HyperparameterError as exc:
        raise invalid(f"hyperparameters.{exc.name}", exc.problem) from None


def check_sft_hyperparameters(values: dict[str, Any]) -> SFTHyperparameters:
    """A chat fine-tune's hyperparameters (``tunepool.sft_hyperparameters``). QLoRA's 4-bit
    kernels exist for CUDA only: refused unless the pool has a worker with CUDA GPUs."""
    try:
        hp = SFTHyperparameters.from_dict(dict(values))
    except SFTSettingsError as exc:
        raise invalid(f"hyperparameters.{exc.name or 'method'}", str(exc)) from None
    if hp.method == "qlora" and not has_cuda_worker(db()):
        raise invalid(
            "hyperparameters.method",
            "qlora needs a worker with a CUDA GPU and the pool has none; use lora",
        )
    return hp


def check_validation_labels(train: Dataset, validation: Dataset) -> None:
    """Refuse evaluation data with a label the training data lacks, naming its line."""
    if train.task in ("masked-lm", CAUSAL_LM):
        return
    known = set((train.stats or {}).get("labels", {}))
    first_lines = (validation.stats or {}).get("label_first_line", {})
    for label in (validation.stats or {}).get("labels", {}):
        if label not in known:
            line = first_lines.get(label)
            where = f"line {line}: " if line is not None else ""
            raise invalid(
                "validation_dataset",
                f"{where}label {label!r} does not occur in the training data",
                line=line,
            )


def training_report(
    task: str,
    train: Dataset,
    validation: Dataset | None,
    hyperparameters: dict[str, Any],
    base_model: str,
) -> dict[str, Any]:
    """What `validate_only` returns: per-file findings, the "auto" choices and an estimate.

    A chat file was read and counted when it was uploaded, and a chat job's dry run is
    the job factory's (storage.runtime_estimates): its report is the files' statistics
    and its hyperparameters as the worker will train with them. Counting word pieces
    needs the base model's tokenizer, which the API does not load: a serving worker
    computes the report (503 while none runs); a file it cannot read is a 422 naming the
    line, as at upload.
    """
    if task == CAUSAL_LM:
        return {
            "task": task,
            "hyperparameters": check_sft_hyperparameters(hyperparameters).to_dict(),
            "train": train.stats,
            "validation": validation.stats if validation is not None else None,
        }
    from api.serving import serving_client

    def recorded(dataset: Dataset | None) -> dict[str, Any] | None:
        if dataset is None:
            return None
        return {
            "key": dataset.object_key,
            "size": dataset.size,
            "sha256": dataset.sha256,
            "format": dataset.format,
        }

    body = {
        "task": task,
        "train": recorded(train),
        "validation": recorded(validation),
        "hyperparameters": hyperparameters,
        "base_model": base_model,
    }
    db().rollback()  # hold no read transaction (SQLite: the database lock) while waiting
    report: dict[str, Any] = serving_client(current_app).call(Kind.REPORT, body)
    return report
