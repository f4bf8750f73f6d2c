"""Chat fine-tuning of causal language models (LoRA by default) as an engine.

The recipe (``worker.training.causal_lm.recipe``) trains; this engine fetches its
inputs like every fine-tune (data, the newest checkpoint, the base model by the
submit's rule) and returns the adapter directory as a model version linked to its
base, loadable with plain ``peft.PeftModel.from_pretrained(base, directory)``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from storage.attempts import StopReason
from tunepool.data.chat import CHAT_FORMATS
from tunepool.sft_hyperparameters import SFTHyperparameters
from worker.engines.context import EngineResult, ModelOutput, RunContext, stopped
from worker.engines.fetch import fetch_finetune_inputs, scalars

TASK = "causal-lm"
DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"
ADAPTER_CONFIG = "adapter_config.json"


def train(ctx: RunContext) -> EngineResult:
    inputs = fetch_finetune_inputs(ctx, DEFAULT_BASE_MODEL)
    hp = SFTHyperparameters.from_dict(inputs.hyperparameters)
    # torch, transformers and peft only once the inputs are here.
    from worker.training.causal_lm.recipe import MERGED_DIR, finetune_causal_lm
    from worker.training.causal_lm.spec import SFTSpec

    validation = inputs.validation
    output_dir = ctx.workdir / "output"
    spec = SFTSpec(
        base_model=inputs.base.source,
        train_file=inputs.train.path,
        output_dir=output_dir,
        train_format=chat_format(inputs.train.format),
        validation_file=validation.path if validation is not None else None,
        validation_format=chat_format(validation.format) if validation is not None else "auto",
        hyperparameters=hp,
        resume_from=inputs.resume_from,
        model_cache_dir=ctx.settings.model_cache_dir,
    )
    result = finetune_causal_lm(spec, ctx.callbacks)
    if result.stopped is not None:
        return stopped(StopReason(result.stopped))
    model_dir = result.model_dir
    adapter = hp.method != "full"
    if adapter:
        _name_base(model_dir / ADAPTER_CONFIG, inputs.base.name)
    # The report travels with the version, as an encoder's does.
    report = {**result.report, "base_model": inputs.base.name}
    (model_dir / "eval_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    if (output_dir / MERGED_DIR).is_dir():
        shutil.move(output_dir / MERGED_DIR, model_dir / MERGED_DIR)
    metrics = {
        **result.metrics,
        "report": report,
        "global_step": result.global_step,
        "hyperparameters_used": result.hyperparameters_used,
    }
    return EngineResult(
        summary=f"trained {result.global_step} steps ({hp.method})",
        metrics=metrics,
        model=ModelOutput(
            directory=model_dir,
            task=TASK,
            base_model=inputs.base.name,
            lineage=inputs.lineage(ctx.job.spec),
            metrics=scalars(result.metrics),
            artifact="adapter" if adapter else "model",
            base_version_id=inputs.base.version_id,
        ),
    )


def chat_format(stored: str) -> str:
    """A stored dataset's format as the chat reader names it ("auto" detects it)."""
    return stored if stored in CHAT_FORMATS else "auto"


def _name_base(config_path: Path, base_name: str) -> None:
    """peft writes the path the base was loaded from (this run's scratch directory);
    the registry's name for the base is what a reader of the adapter can use."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_name
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
