"""int8 compression as an engine: a version quantised into the next version of its model."""

from __future__ import annotations

import logging
from typing import Any

from worker.engines.context import (
    EngineResult,
    InputMissing,
    LocalModel,
    ModelOutput,
    RunContext,
    stopped,
)

log = logging.getLogger(__name__)


def compress(ctx: RunContext) -> EngineResult:
    source = ctx.inputs.model_version(str(ctx.job.spec["model_version_id"]), ctx.workdir / "model")
    examples = _evaluation_examples(ctx, source)
    from worker.inference.compress import compress as quantise  # torch, once inputs are here

    if (reason := ctx.stop_requested()) is not None:
        return stopped(reason)
    log.info("quantising %s:%d, scored on %d examples", source.name, source.version, len(examples))
    report = quantise(source.directory, ctx.workdir / "int8", examples)
    if (reason := ctx.stop_requested()) is not None:
        return stopped(reason)
    return EngineResult(
        summary=f"int8 of {source.name}:{source.version}",
        metrics=report,
        model=ModelOutput(
            directory=ctx.workdir / "int8",
            task=source.task,
            base_model=source.base_model,
            name=source.name,
            lineage={
                **source.lineage,
                "compressed_from": {"version": source.version, "id": source.id},
                "quantization": report["quantization"],
                "job": ctx.job.id,
            },
            metrics={k: v for k, v in report.items() if isinstance(v, int | float | str)},
        ),
    )


def _evaluation_examples(ctx: RunContext, source: LocalModel) -> list[Any]:
    """The version's own evaluation set: the validation dataset its job trained with."""
    from worker.inference.inputs import read_examples

    dataset_id = source.lineage.get("validation_dataset")
    if not dataset_id:
        return []
    try:
        dataset = ctx.inputs.dataset(str(dataset_id), ctx.workdir / "eval")
    except InputMissing:
        return []  # deleted since: compressed without a before/after score
    return read_examples(source.task, dataset.path, dataset.format)
