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
from tunepool.hyperparameters import HyperparameterError, Hyperparameters
from tunepool.serving_protocol import Kind


def check_hyperparameters(values: dict[str, Any], task: str) -> None:
    """The worker's own typed check, at submit: 422 naming ``hyperparameters.<name>``."""
    if task == "causal-lm":
        # The chat engine's own settings (torch-free), until issue 22's submit checks land.
        from worker.training.causal_lm.spec import SFTHyperparameters, SFTSettingsError

        try:
            SFTHyperparameters.from_dict(dict(values))
        except (SFTSettingsError, TypeError) as exc:
            raise invalid("hyperparameters", str(exc)) from None
        return
    try:
        Hyperparameters.from_dict(values).for_task(task)
    except HyperparameterError as exc:
        raise invalid(f"hyperparameters.{exc.name}", exc.problem) from None


def check_validation_labels(train: Dataset, validation: Dataset) -> None:
    """Refuse evaluation data with a label the training data lacks, naming its line."""
    if train.task == "masked-lm":
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
    the job factory's (storage.runtime_estimates): its report is the files' statistics.
    Counting word pieces needs the base model's tokenizer, which the API does not load:
    a serving worker computes the report (503 while none runs); a file it cannot read
    is a 422 naming the line, as at upload.
    """
    if task == "causal-lm":
        return {
            "task": task,
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
