"""Run an ``evaluate`` job: score a scheduled retrain's candidate against ``production``.

Both versions are scored on the same evaluation dataset by the serving path (the
model loaded as it is served, predictions through ``worker.inference.predict``):
entity F1 for token classification (``worker.inference.evaluate.entity_f1``),
accuracy and macro F1 for sequence classification (the training engine's
``classification_scores``). The decision (``scheduler.promotion``) commits with
the job's success, on the worker, never in the API process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from scheduler.promotion import PRODUCTION, record_decision
from storage.blobs import fetch_dir, fetch_file
from storage.db import transaction
from storage.lease import Claim
from storage.models import Dataset, ModelVersion
from storage.registry import aliases, get_version
from tunepool.platform import Platform
from worker.model_jobs import _keep_lease, _run, _succeed

log = logging.getLogger(__name__)


def run_evaluate_job(platform: Platform, job_id: str, worker_name: str) -> str:
    """Returns not_claimed, succeeded, failed or lease_lost."""
    return _run(platform, job_id, worker_name, _evaluate)


def read_examples(task: str, path: Path, fmt: str) -> list[Any]:
    if task == "token-classification":
        from tunepool.data.token_files import read_token_examples

        return list(read_token_examples(path, fmt))
    from tunepool.data.text_files import read_text_examples

    return list(read_text_examples(path, fmt))


def score(model_dir: Path, task: str, examples: list[Any]) -> dict[str, float]:
    """The version's scores on ``examples``, predicted as the model is served."""
    from worker.inference.model import load_model

    loaded = load_model(model_dir)
    if task == "token-classification":
        from worker.inference.evaluate import entity_f1

        return entity_f1(loaded, examples)
    from worker.inference.predict import predict
    from worker.training.sequence_classification import classification_scores

    predicted = [p["label"] for p in predict(loaded, [e.text for e in examples])]
    truth = [e.label for e in examples]
    labels = list(loaded.labels) + sorted({*truth} - set(loaded.labels))
    metrics, _report = classification_scores(truth, predicted, labels)
    return {**metrics, "examples": float(len(examples))}


def _evaluate(
    platform: Platform,
    claimed: Claim,
    team_id: str,
    spec: dict[str, Any],
    source: ModelVersion,
    workdir: Path,
) -> str:
    metric = str(spec["metric"])
    with platform.sessions() as session:
        dataset = session.get(Dataset, spec["evaluation_dataset"])
        if dataset is None or dataset.team_id != team_id:
            raise LookupError(f"evaluation dataset {spec['evaluation_dataset']} not found")
        data_path = workdir / f"evaluation.{dataset.format}"
        fetch_file(session, platform.store, dataset.object_key, data_path)
        fmt = dataset.format
        champion_version = aliases(session, team_id, source.name).get(PRODUCTION)
        champion = (
            get_version(session, team_id, source.name, champion_version)
            if champion_version is not None
            else None
        )
        if champion is not None:
            fetch_dir(session, platform.store, champion.prefix, workdir / "champion")
    examples = read_examples(source.task, data_path, fmt)
    if _keep_lease(platform, claimed) == "lease_lost":
        return "lease_lost"
    candidate_scores = score(workdir / "model", source.task, examples)
    champion_scores: dict[str, float] | None = None
    if champion is not None:
        if _keep_lease(platform, claimed) == "lease_lost":
            return "lease_lost"
        champion_scores = score(workdir / "champion", source.task, examples)
    if metric not in candidate_scores:
        raise ValueError(f"metric {metric!r} is not among {sorted(candidate_scores)}")
    candidate_score = float(candidate_scores[metric])
    champion_score = float(champion_scores[metric]) if champion_scores is not None else None
    with transaction(platform.sessions) as session:
        outcome = record_decision(
            session,
            str(spec["schedule_run"]),
            model_name=source.name,
            candidate_version=source.version,
            candidate_score=candidate_score,
            champion_version=champion.version if champion is not None else None,
            champion_score=champion_score,
            scores={"candidate": candidate_scores, "champion": champion_scores},
        )
        metrics = {
            "metric": metric,
            "candidate_version": source.version,
            "candidate_score": candidate_score,
            "champion_version": champion.version if champion is not None else None,
            "champion_score": champion_score,
            "outcome": outcome,
            "examples": len(examples),
        }
        log.info("job %s: %s", claimed.job_id, metrics)
        return _succeed(
            session, claimed, metrics, f"evaluated {source.name}:{source.version}: {outcome}"
        )
