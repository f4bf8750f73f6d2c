"""The training engine's callbacks for a job: progress, lease renewal, checkpoints, stop requests.

The engine knows nothing of SQL or the object store; this is where its reports
become job events, uploaded checkpoints and a renewed lease.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.blobs import delete_prefix, store_dir
from storage.db import transaction
from storage.lease import renew_lease
from storage.models import Checkpoint, Job
from storage.states import record_event
from tunepool.platform import Platform
from worker import shutdown as worker_shutdown
from worker.lease_keeper import LeaseKeeper

log = logging.getLogger(__name__)


def checkpoint_prefix(team_id: str, job_id: str, step: int) -> str:
    return f"teams/{team_id}/jobs/{job_id}/checkpoints/step-{step:08d}/"


class JobCallbacks:
    def __init__(
        self, platform: Platform, job_id: str, team_id: str, owner: str, attempt: int
    ) -> None:
        self.platform, self.job_id, self.team_id = platform, job_id, team_id
        self.owner, self.attempt = owner, attempt
        self.settings = platform.settings
        # The lease is held by the one keeper every job kind uses (worker.lease_keeper).
        self.keeper = LeaseKeeper(platform, job_id, owner)

    @property
    def lease_lost(self) -> bool:
        return self.keeper.lease_lost

    def start_lease_keeper(self) -> None:
        """Renew from a thread for the whole run, as long as the run shows signs of life.

        Downloads, imports, evaluation and the final upload call no step callback, yet
        must not lose the lease; a loop that made no progress for ``loop_stall_s`` is
        hung, stops being renewed, and loses its lease to the reaper (DESIGN §3).
        """
        self.keeper.start()

    def stop_lease_keeper(self) -> None:
        self.keeper.stop()

    def should_stop(self) -> str | None:
        reason = self.keeper.stop_reason()
        if reason is None and worker_shutdown.requested():
            return "shutdown"  # SIGTERM: checkpoint, give the job back (worker.shutdown)
        return reason

    # -- reports -------------------------------------------------------------
    def on_progress(self, event: dict[str, Any]) -> None:
        self.keeper.alive()
        record_progress(self.platform, self.job_id, self.attempt, event)
        log.info(
            "step %s epoch %.2f loss %.4f %.0f tokens/s",
            event.get("step"),
            float(event.get("epoch") or 0),
            float(event.get("loss") or 0),
            float(event.get("tokens_per_s") or 0),
        )

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.keeper.alive()
        with transaction(self.platform.sessions) as session:
            job = session.get(Job, self.job_id)
            if job is not None:
                history = list(job.metrics.get("epochs", []))
                history.append({"epoch": epoch, **_summary(metrics)})
                job.metrics = {**job.metrics, "epochs": history}
            record_event(
                session, self.job_id, "evaluation", data={"epoch": epoch, **_summary(metrics)}
            )

    def on_checkpoint(self, step: int, epoch: float, path: Path, metrics: dict[str, Any]) -> None:
        """Upload the checkpoint; record it only while this runner still holds the lease."""
        self.keeper.alive()
        if not self.keeper.renew():
            return
        prefix = checkpoint_prefix(self.team_id, self.job_id, step)
        with transaction(self.platform.sessions) as session:
            store_dir(session, self.platform.store, prefix, path)
        with transaction(self.platform.sessions) as session:
            if not renew_lease(session, self.job_id, self.owner, self.settings.lease_ttl_s):
                self.keeper.lease_lost = True
                return
            existing = session.scalar(
                select(Checkpoint).where(Checkpoint.job_id == self.job_id, Checkpoint.step == step)
            )
            if existing is None:
                session.add(
                    Checkpoint(
                        job_id=self.job_id,
                        attempt=self.attempt,
                        step=step,
                        epoch=epoch,
                        prefix=prefix,
                        metrics=_summary(metrics),
                    )
                )
            record_event(session, self.job_id, "checkpoint", data={"step": step, "epoch": epoch})
        self._prune()

    def _prune(self) -> None:
        """Keep the newest K checkpoints of the job; older ones only cost storage."""
        keep = max(1, self.settings.keep_checkpoints)
        with transaction(self.platform.sessions) as session:
            old = session.scalars(
                select(Checkpoint)
                .where(Checkpoint.job_id == self.job_id)
                .order_by(Checkpoint.step.desc())
                .offset(keep)
            ).all()
            for checkpoint in old:
                delete_prefix(session, self.platform.store, checkpoint.prefix)
                session.delete(checkpoint)


def record_progress(platform: Platform, job_id: str, attempt: int, event: dict[str, Any]) -> None:
    """The job's latest progress (``GET /v1/jobs/<id>``) and a ``progress`` event, for
    every job kind: training reports steps, batch inference inputs done of a total."""
    with transaction(platform.sessions) as session:
        job = session.get(Job, job_id)
        if job is not None:
            job.progress = {**event, "attempt": attempt, "at": time.time()}
        record_event(session, job_id, "progress", data=event)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics of an evaluation (reports stay in the model's report file)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}
