"""Fine-tuning job checks: hyperparameters, label agreement and the validation report.

Kept apart from `api/jobs.py` so the jobs blueprint stays about jobs. Nothing here
imports torch: the report reads the stored files with the torch-free readers and
counts word pieces with the `tokenizers` library (see `tunepool.data.pieces`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from api.context import db, platform
from api.errors import ApiError, invalid
from storage.blobs import fetch_file
from storage.models import Dataset
from tunepool.hyperparameters import HyperparameterError, Hyperparameters


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
    """What `validate_only` returns: per-file findings, the "auto" choices and an estimate."""
    if task == "causal-lm":
        # Chat files are read, counted and estimated at upload (api.chat_datasets); the
        # job's own dry run is the factory's (storage.runtime_estimates).
        return {
            "task": task,
            "train": train.stats,
            "validation": validation.stats if validation is not None else None,
        }
    from tunepool.data.errors import DataError
    from worker.training.validation import validation_report

    with tempfile.TemporaryDirectory(prefix="tunepool-report-") as tmp:
        files: list[tuple[Path, str]] = []
        for index, dataset in enumerate([train, validation]):
            if dataset is None:
                continue
            path = Path(tmp) / f"{index}.{dataset.format}"
            fetch_file(db(), platform().store, dataset.object_key, path)
            files.append((path, dataset.format))
        try:
            return validation_report(
                task, files[0], files[1] if len(files) > 1 else None, hyperparameters, base_model
            )
        except DataError as exc:
            field = "train_dataset" if validation is None else "dataset"
            raise ApiError(422, "invalid_data", str(exc), field, line=exc.line) from None
