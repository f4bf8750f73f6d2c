"""The inputs every fine-tuning engine fetches the same way: data, checkpoint, base model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.engines.context import BaseModel, LocalDataset, RunContext


@dataclass(frozen=True)
class FinetuneInputs:
    train: LocalDataset
    validation: LocalDataset | None
    resume_from: Any  # Path | None: the newest checkpoint, for a resumed attempt
    base: BaseModel
    hyperparameters: dict[str, Any]

    def lineage(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Where the version came from; checksums as trained on, so the lineage
        outlives a dataset's deletion."""
        return {
            "train_dataset": spec.get("train_dataset"),
            "validation_dataset": spec.get("validation_dataset"),
            "hyperparameters": spec.get("hyperparameters") or {},
            "datasets": {
                ds.id: ds.sha256 for ds in (self.train, self.validation) if ds is not None
            },
        }


def fetch_finetune_inputs(ctx: RunContext, default_base: str) -> FinetuneInputs:
    spec = ctx.job.spec
    hyper = dict(spec.get("hyperparameters") or {})
    if ctx.settings.checkpoint_every_steps and "checkpoint_every_steps" not in hyper:
        hyper["checkpoint_every_steps"] = ctx.settings.checkpoint_every_steps
    data_dir = ctx.workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train = ctx.inputs.dataset(str(spec["train_dataset"]), data_dir / "train")
    validation = None
    if spec.get("validation_dataset"):
        validation = ctx.inputs.dataset(str(spec["validation_dataset"]), data_dir / "validation")
    resume_from = ctx.inputs.resume_checkpoint(ctx.workdir / "resume")
    base = ctx.inputs.base_model(
        str(spec.get("base_model") or default_base), ctx.workdir / "base_model"
    )
    return FinetuneInputs(train, validation, resume_from, base, hyper)


def scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}
