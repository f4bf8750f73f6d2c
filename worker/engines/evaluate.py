"""Champion/challenger scoring of a scheduled retrain as an engine.

Both versions are scored on the same evaluation dataset by the serving path (the
model loaded as it is served, predictions through ``worker.inference.predict``):
entity F1 for token classification, accuracy and macro F1 for sequence
classification (``worker.inference.evaluate.served_scores``). The decision is
returned, and the envelope records it (``storage.promotion``) with the job's
success, on the worker, never in the API process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from worker.engines.context import Decision, EngineResult, RunContext, stopped

log = logging.getLogger(__name__)


def score(model_dir: Path, examples: list[Any]) -> dict[str, float]:
    """The version's scores on ``examples``, predicted as the model is served."""
    from worker.inference.evaluate import served_scores
    from worker.inference.model import load_model

    return served_scores(load_model(model_dir), examples)


def evaluate(ctx: RunContext) -> EngineResult:
    spec = ctx.job.spec
    metric = str(spec["metric"])
    source = ctx.inputs.model_version(str(spec["model_version_id"]), ctx.workdir / "model")
    dataset = ctx.inputs.dataset(str(spec["evaluation_dataset"]), ctx.workdir / "evaluation")
    champion = ctx.inputs.production_version(source.name, ctx.workdir / "champion")
    from worker.inference.inputs import read_examples  # torch, once inputs are here

    examples = read_examples(source.task, dataset.path, dataset.format)
    if (reason := ctx.stop_requested()) is not None:
        return stopped(reason)
    candidate_scores = score(source.directory, examples)
    champion_scores: dict[str, float] | None = None
    if champion is not None:
        if (reason := ctx.stop_requested()) is not None:
            return stopped(reason)
        champion_scores = score(champion.directory, examples)
    if metric not in candidate_scores:
        raise ValueError(f"metric {metric!r} is not among {sorted(candidate_scores)}")
    candidate_score = float(candidate_scores[metric])
    champion_score = float(champion_scores[metric]) if champion_scores is not None else None
    metrics = {
        "metric": metric,
        "candidate_version": source.version,
        "candidate_score": candidate_score,
        "champion_version": champion.version if champion is not None else None,
        "champion_score": champion_score,
        "examples": len(examples),
    }
    log.info("job %s: %s", ctx.job.id, metrics)
    return EngineResult(
        summary=f"evaluated {source.name}:{source.version}",
        metrics=metrics,
        decision=Decision(
            schedule_run=str(spec["schedule_run"]),
            model_name=source.name,
            candidate_version=source.version,
            candidate_score=candidate_score,
            champion_version=champion.version if champion is not None else None,
            champion_score=champion_score,
            scores={"candidate": candidate_scores, "champion": champion_scores},
        ),
    )
