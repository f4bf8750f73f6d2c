"""Run an ``evaluate`` job: score a scheduled retrain's candidate against ``production``.

Both versions are scored on the same evaluation dataset by the serving path (the
model loaded as it is served, predictions through ``worker.inference.predict``):
entity F1 for token classification, accuracy and macro F1 for sequence
classification (``worker.inference.evaluate.served_scores``). The decision
(``storage.promotion``) commits with the job's success, on the worker, never in
the API process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from storage.blobs import fetch_dir, fetch_file
from storage.db import transaction
from storage.lease import Claim
from storage.models import Dataset, ModelVersion
from storage.platform import Platform
from storage.promotion import PRODUCTION, record_decision
from storage.registry import aliases, get_version
from worker.inference.inputs import read_examples
from worker.lease_keeper import LeaseKeeper
from worker.model_jobs import _run, _succeed, stop_requested

log = logging.getLogger(__name__)


def run_evaluate_job(platform: Platform, job_id: str, worker_name: str) -> str:
    """Returns not_claimed, succeeded, failed or lease_lost."""
    return _run(platform, job_id, worker_name, _evaluate)


def score(model_dir: Path, examples: list[Any]) -> dict[str, float]:
    """The version's scores on ``examples``, predicted as the model is served."""
    from worker.inference.evaluate import served_scores
    from worker.inference.model import load_model

    return served_scores(load_model(model_dir), examples)


def _evaluate(
    platform: Platform,
    claimed: Claim,
    keeper: LeaseKeeper,
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
    if (stopped := stop_requested(platform, claimed, keeper)) is not None:
        return stopped
    candidate_scores = score(workdir / "model", examples)
    champion_scores: dict[str, float] | None = None
    if champion is not None:
        if (stopped := stop_requested(platform, claimed, keeper)) is not None:
            return stopped
        champion_scores = score(workdir / "champion", examples)
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
