"""A chat fine-tune's expected run time, fixed when the job is made, for admission to plan with.

Admission's backfill and every waiting job's ``estimated_start`` use a job's
``estimated_runtime_s`` (scheduler.planner); for an encoder fine-tune only the submitter
knows it. A causal-lm job's is known before it runs: the tokens of its training file
(counted, or approximated, at upload: ``tunepool.chat_estimates``) times its epochs at
the engine's measured tokens per second, on a GPU if the pool has one. The factory
stores that dry run in the spec (``runtime_estimate``) and, unless the submitter gave
one, its seconds as ``estimated_runtime_s``; once the job runs, its own ETA from
measured steps takes over. A submitter's own estimate always wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Dataset, Worker
from storage.worker_state import WorkerState
from tunepool.builtin_models import CAUSAL_LM_TASK
from tunepool.chat_estimates import (
    BASIS,
    DEFAULT_EPOCHS,
    dry_run_estimate,
    tokens_per_s,
    train_tokens,
)

# The engine holds this share of the training file out when no validation file is given
# (SFTHyperparameters.validation_split's default).
DEFAULT_VALIDATION_SPLIT = 0.05


def chat_runtime_estimate(
    session: Session, team_id: str, spec: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The dry run of a causal-lm fine-tune's spec; None when its data has no counts."""
    dataset_id = spec.get("train_dataset")
    dataset = session.get(Dataset, dataset_id) if isinstance(dataset_id, str) else None
    if dataset is None or dataset.team_id != team_id or dataset.task != CAUSAL_LM_TASK:
        return None
    found = train_tokens(dataset.stats or {})
    if found is None:
        return None
    tokens, how = found
    hyper = spec.get("hyperparameters") or {}
    epochs = hyper.get("epochs")
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else DEFAULT_EPOCHS
    if not spec.get("validation_dataset"):
        split = hyper.get("validation_split", DEFAULT_VALIDATION_SPLIT)
        if isinstance(split, int | float) and 0 <= split < 1:
            tokens = round(tokens * (1 - split))
    gpu = _pool_has_gpus(session)
    return {
        **dry_run_estimate(tokens, epochs, tokens_per_s(gpu)),
        "device": "gpu" if gpu else "cpu",
        "tokens": how,
        "basis": BASIS,
    }


def with_runtime_estimate(
    session: Session, team_id: str, task: str, spec: Mapping[str, Any]
) -> Mapping[str, Any]:
    """``spec`` with its dry run (and its seconds as the runtime, unless given)."""
    if task != CAUSAL_LM_TASK:
        return spec
    estimate = chat_runtime_estimate(session, team_id, spec)
    if estimate is None or "expected_seconds" not in estimate:
        return spec
    added: dict[str, Any] = {**spec, "runtime_estimate": estimate}
    if not spec.get("estimated_runtime_s"):
        added["estimated_runtime_s"] = max(estimate["expected_seconds"], 1.0)
    return added


def _pool_has_gpus(session: Session) -> bool:
    rows = session.scalars(
        select(Worker.gpus).where(Worker.state != WorkerState.STOPPED.value)
    ).all()
    return any(gpus for gpus in rows)
