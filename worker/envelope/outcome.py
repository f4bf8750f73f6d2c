"""How a run's end is recorded, the same for every job kind: through the state machine
(``storage.states``), with the run's outcome (``storage.lease.end_run``), and only
while this runner still holds the lease (a compare-and-set on its owner).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from storage.attempts import AttemptOutcome, StopReason
from storage.blobs import store_dir, store_file
from storage.db import transaction
from storage.layout import model_prefix, predictions_key
from storage.lease import Claim, end_run, release
from storage.models import Job, ModelVersion
from storage.platform import Platform
from storage.promotion import record_decision
from storage.registry import next_version
from storage.states import JobState, transition
from worker.engines.context import EngineResult, JobView, ModelOutput
from worker.shutdown import give_back

S = JobState
# A runner records an end while it holds the lease in any of these.
_HELD = {S.RUNNING, S.CANCELLING, S.PREEMPTING}


def fail(platform: Platform, claimed: Claim, error: str, *, trace: str = "") -> AttemptOutcome:
    """Failures inside the run are final; only a vanished process (lease expiry) is retried."""
    with transaction(platform.sessions) as session:
        moved = transition(
            session,
            claimed.job_id,
            S.FAILED,
            reason=error[:500],
            expect=_HELD,
            lease_owner=claimed.owner,
            values={"error": error, "worker_name": None},
            data={"traceback": trace[-4000:]} if trace else None,
        )
        if moved:
            end_run(session, claimed.job_id, claimed.owner, AttemptOutcome.FAILED)
    return AttemptOutcome.FAILED if moved else AttemptOutcome.LEASE_LOST


def record_stop(
    session: Session, claimed: Claim, stopped: str, *, checkpointed: bool = True
) -> AttemptOutcome:
    """The run stopped on request (after its stop checkpoint, where it keeps them):
    record why and release the lease."""
    job_id, owner = claimed.job_id, claimed.owner
    if stopped == StopReason.CANCEL:
        release(
            session,
            job_id,
            owner,
            S.CANCELLED,
            expect={S.CANCELLING},
            reason="cancelled by request" + ("; checkpoint saved" if checkpointed else ""),
            outcome=AttemptOutcome.CANCELLED,
        )
        return AttemptOutcome.CANCELLED
    if stopped == StopReason.PREEMPT:
        # Why it was preempted (for which job, of which priority and team) is on the row,
        # set by the admission pass that asked; a row without it predates that.
        job = session.get(Job, job_id, populate_existing=True)
        code = (job.reason_code if job is not None else None) or "priority"
        cause = (job.reason if job is not None else None) or "preempted"
        release(
            session,
            job_id,
            owner,
            S.PENDING,
            expect={S.PREEMPTING},
            reason=f"{cause}; checkpointed, resumes from its checkpoint",
            outcome=AttemptOutcome.PREEMPTED,
            waiting=(code, cause),
        )
        return AttemptOutcome.PREEMPTED
    if stopped == StopReason.SHUTDOWN:
        return AttemptOutcome(give_back(session, job_id, owner))
    raise ValueError(f"job {job_id}: unknown stop reason {stopped!r}")


def succeed(
    platform: Platform, claimed: Claim, job: JobView, result: EngineResult
) -> AttemptOutcome:
    """Store what the engine produced, then, in one transaction, register it and move the
    job to succeeded. Uploads come first, each committed alone, so no transaction stays
    open through them (on SQLite that would hold the write lock that renewals need)."""
    metrics: dict[str, Any] = dict(result.metrics)
    reason = result.summary or "finished"
    if result.output_file is not None:
        key = predictions_key(job.team_id, job.id)
        with transaction(platform.sessions) as session:
            stored = store_file(session, platform.store, key, result.output_file)
            metrics.update(output_key=key, output_bytes=stored.size, output_sha256=stored.sha256)
    name, version, prefix = None, 0, ""
    if result.model is not None:
        name = result.model.name or job.model_name or f"{job.task}-{job.id[-8:]}"
        with platform.sessions() as session:
            version = next_version(session, job.team_id, name)
        prefix = model_prefix(job.team_id, name, version)
        with transaction(platform.sessions) as session:
            store_dir(session, platform.store, prefix, result.model.directory)
        metrics["model_version"] = version
        reason = f"{reason}; model {name} version {version} stored"
    with transaction(platform.sessions) as session:
        values: dict[str, Any] = {"worker_name": None}
        if result.model is not None and name is not None:
            model = _version_row(job, result.model, name, version, prefix)
            session.add(model)
            session.flush()
            values["model_version_id"] = model.id
            # The name it was stored under, also when the job named none: the job names
            # the model it made (the dashboard finds the version by it).
            values["model_name"] = name
        if result.decision is not None:
            decision = result.decision
            outcome = record_decision(
                session,
                decision.schedule_run,
                model_name=decision.model_name,
                candidate_version=decision.candidate_version,
                candidate_score=decision.candidate_score,
                champion_version=decision.champion_version,
                champion_score=decision.champion_score,
                scores=dict(decision.scores),
            )
            metrics["outcome"] = outcome
            reason = f"{reason}: {outcome}"
        row = session.get(Job, job.id)
        earlier = dict(row.metrics or {}) if row is not None else {}
        # Merged: a training run's per-epoch history is already on the row.
        values["metrics"] = {**earlier, **metrics}
        moved = transition(
            session,
            job.id,
            S.SUCCEEDED,
            reason=reason,
            expect=_HELD,
            lease_owner=claimed.owner,
            values=values,
        )
        if not moved:
            # Lost the lease while uploading: whoever holds the job now records it.
            session.rollback()
            return AttemptOutcome.LEASE_LOST
        end_run(session, job.id, claimed.owner, AttemptOutcome.SUCCEEDED)
    return AttemptOutcome.SUCCEEDED


def _version_row(
    job: JobView, output: ModelOutput, name: str, version: int, prefix: str
) -> ModelVersion:
    return ModelVersion(
        team_id=job.team_id,
        name=name,
        version=version,
        job_id=job.id,
        task=output.task,
        prefix=prefix,
        base_model=output.base_model,
        base_version_id=output.base_version_id,
        artifact=output.artifact,
        metrics=dict(output.metrics),
        lineage=dict(output.lineage),
    )
