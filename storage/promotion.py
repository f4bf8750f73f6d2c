"""Champion/challenger: the rule that moves ``production``, and the record of each decision.

The worker that scored both versions calls :func:`record_decision` inside the same
transaction that marks its evaluate job succeeded, so a decision exists exactly when
the evaluation finished under a valid lease.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from storage.registry import aliases, set_alias
from storage.schedules import RunOutcome, RunState, Schedule, ScheduleRun, move_run

PRODUCTION = "production"
# Metrics a promotion rule may name, per task; every one of them is higher-is-better.
METRICS: dict[str, tuple[str, ...]] = {
    "token-classification": ("f1", "precision", "recall"),
    "sequence-classification": ("accuracy", "macro_f1", "macro_precision", "macro_recall"),
}
# Scores are float sums; 0.8 - 0.7 must count as a margin of 0.1.
_EPSILON = 1e-9


def decide(candidate: float, champion: float | None, min_margin: float) -> RunOutcome:
    """``promoted`` when there is no champion or candidate - champion >= min_margin."""
    if champion is None:
        return RunOutcome.PROMOTED
    won = candidate - champion >= min_margin - _EPSILON
    return RunOutcome.PROMOTED if won else RunOutcome.KEPT


def record_decision(
    session: Session,
    run_id: str,
    *,
    model_name: str,
    candidate_version: int,
    candidate_score: float,
    champion_version: int | None,
    champion_score: float | None,
    scores: dict[str, Any],
) -> RunOutcome | None:
    """Decide, move ``production`` if the candidate won, and write the run's record.

    Returns the outcome, or None when the run was already decided elsewhere. If
    ``production`` moved while the versions were being scored, the comparison is
    stale: nothing moves and the run says so.
    """
    run = session.get(ScheduleRun, run_id, populate_existing=True)
    if run is None or run.state != RunState.EVALUATING:
        return None
    schedule = session.get(Schedule, run.schedule_id)
    margin = float(run.min_margin or 0.0)
    current = aliases(session, run.team_id, model_name).get(PRODUCTION)
    metric = run.metric or "?"
    if current != champion_version:
        outcome = RunOutcome.KEPT
        reason = (
            f"production moved from {_v(champion_version)} to {_v(current)} during the "
            "evaluation; nothing promoted"
        )
    else:
        outcome = decide(candidate_score, champion_score, margin)
        versus = (
            "no production version yet"
            if champion_score is None
            else f"champion v{champion_version} {champion_score:.4f}"
        )
        reason = (
            f"{metric}: candidate v{candidate_version} {candidate_score:.4f} vs {versus}; "
            f"minimum margin {margin:g}"
        )
    now = time.time()
    moved = move_run(
        session,
        run_id,
        RunState.EVALUATING,
        RunState.DECIDED,
        outcome=outcome,
        reason=reason,
        candidate_version=candidate_version,
        candidate_score=candidate_score,
        champion_version=champion_version,
        champion_score=champion_score,
        scores=scores,
        decided_at=now,
    )
    if not moved:
        return None
    if outcome == RunOutcome.PROMOTED:
        set_alias(
            session,
            run.team_id,
            model_name,
            PRODUCTION,
            candidate_version,
            reason=f"schedule {schedule.name if schedule else run.schedule_id}: {reason}",
            actor=f"schedule:{run.schedule_id}",
        )
    return outcome


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
