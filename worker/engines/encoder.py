"""Fine-tuning of encoders (token and sequence classification, masked-LM) as an engine."""

from __future__ import annotations

from storage.attempts import StopReason
from worker.engines.context import EngineResult, ModelOutput, RunContext, stopped
from worker.engines.fetch import fetch_finetune_inputs, scalars

DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"


def train(ctx: RunContext) -> EngineResult:
    inputs = fetch_finetune_inputs(ctx, DEFAULT_BASE_MODEL)
    # torch and transformers only once the inputs are here.
    from worker.training.engine import finetune
    from worker.training.models import resolve_base_model
    from worker.training.spec import Hyperparameters, TrainSpec

    validation = inputs.validation
    spec = TrainSpec(
        task=ctx.job.task,
        base_model=resolve_base_model(inputs.base.source),
        train_file=inputs.train.path,
        train_format=inputs.train.format,
        validation_file=validation.path if validation is not None else None,
        validation_format=validation.format if validation is not None else None,
        output_dir=ctx.workdir / "model",
        # Keys left out are chosen from the data size by the engine ("auto").
        hyperparameters=Hyperparameters.from_dict(inputs.hyperparameters, omitted_auto=True),
        resume_from=inputs.resume_from,
        world_size=ctx.job.world_size,
    )
    result = finetune(spec, ctx.callbacks)
    if result.stopped is not None:
        return stopped(StopReason(result.stopped))
    metrics = {
        **result.metrics,
        "report": result.report,
        "global_step": result.global_step,
        # "auto" values resolved: what the run actually trained with.
        "hyperparameters_used": result.hyperparameters_used,
    }
    return EngineResult(
        summary=f"trained {result.global_step} steps",
        metrics=metrics,
        model=ModelOutput(
            directory=result.model_dir,
            task=ctx.job.task,
            base_model=inputs.base.name,
            lineage=inputs.lineage(ctx.job.spec),
            metrics=scalars(metrics),
            base_version_id=inputs.base.version_id,
        ),
    )
