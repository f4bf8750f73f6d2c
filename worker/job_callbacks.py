"""An engine's callbacks for a job: progress, lease renewal, checkpoints, stop requests.

The run envelope (``worker.envelope``) hands these to every engine. The engine knows
nothing of SQL or the object store; this is where its reports become job events,
uploaded checkpoints and a renewed lease.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.attempts import StopReason
from storage.blobs import store_dir
from storage.db import transaction
from storage.layout import checkpoint_prefix
from storage.lease import renew_lease, update_leased
from storage.models import Checkpoint, Job
from storage.platform import Platform
from storage.retention import prune_checkpoints
from storage.states import record_event
from tunepool.redis_client import redis_client
from tunepool.startup_times import record_startup
from worker import shutdown as worker_shutdown
from worker.identity import worker_name
from worker.lease_keeper import LeaseKeeper

log = logging.getLogger(__name__)


class JobCallbacks:
    def __init__(
        self, platform: Platform, job_id: str, team_id: str, owner: str, attempt: int
    ) -> None:
        self.platform, self.job_id, self.team_id = platform, job_id, team_id
        self.owner, self.attempt = owner, attempt
        self.settings = platform.settings
        # The lease is held by the one keeper every job kind uses (worker.lease_keeper).
        self.keeper = LeaseKeeper(platform, job_id, owner)
        self._first_report = True

    @property
    def lease_lost(self) -> bool:
        return self.keeper.lease_lost

    def _lost(self) -> None:
        self.keeper.lease_lost = True

    def start_lease_keeper(self) -> None:
        """Renew from a thread for the whole run, as long as the run shows signs of life.

        Downloads, imports, evaluation and the final upload call no step callback, yet
        must not lose the lease; a loop that made no progress for ``loop_stall_s`` is
        hung, stops being renewed, and loses its lease to the reaper (DESIGN §3).
        """
        self.keeper.start()

    def stop_lease_keeper(self) -> None:
        self.keeper.stop()

    def still_leased(self) -> bool:
        """Renew now: whether this runner still holds the lease (before an upload that
        only the lease holder may make)."""
        return self.keeper.renew()

    def should_stop(self) -> StopReason | None:
        reason = self.keeper.stop_reason()
        if reason is None and worker_shutdown.requested():
            return StopReason.SHUTDOWN  # SIGTERM: checkpoint, give the job back (worker.shutdown)
        return reason

    # -- reports -------------------------------------------------------------
    def on_progress(self, event: dict[str, Any]) -> None:
        self.keeper.alive()
        if not record_progress(self.platform, self.job_id, self.owner, self.attempt, event):
            self._lost()
            return
        if "step" not in event:
            return  # not a training step (batch inference logs its own progress line)
        if self._first_report:
            self._first_report = False
            self._record_startup()
        log.info(
            "step %s/%s epoch %s/%s loss %.4f %.0f tokens/s",
            event.get("step"),
            event.get("total_steps", "?"),
            event.get("epoch"),
            event.get("epochs", "?"),
            float(event.get("loss") or 0),
            float(event.get("tokens_per_s") or 0),
        )

    def _record_startup(self) -> None:
        """Admission to first step: this worker's start-up time, a sample of the average
        that estimated starts count (tunepool.startup_times)."""
        with self.platform.sessions() as session:
            queued_at = session.scalar(select(Job.queued_at).where(Job.id == self.job_id))
        if queued_at is not None:
            record_startup(
                redis_client(self.settings.redis_url),
                worker_name(self.settings),
                time.time() - queued_at,
            )

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.keeper.alive()
        with transaction(self.platform.sessions) as session:
            # Lock the row under the lease first, so the metrics read are the ones updated.
            if not update_leased(session, self.job_id, self.owner):
                self._lost()
                return
            current = session.scalar(select(Job.metrics).where(Job.id == self.job_id)) or {}
            history = [*current.get("epochs", []), {"epoch": epoch, **_summary(metrics)}]
            update_leased(
                session, self.job_id, self.owner, {"metrics": {**current, "epochs": history}}
            )
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
                self._lost()
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
            # The best step goes with it: retention keeps that checkpoint (storage.retention).
            data = {"step": step, "epoch": epoch, "best_step": _best_step(path)}
            record_event(session, self.job_id, "checkpoint", data=data)
        # The best and the newest K stay; older ones only cost storage.
        with transaction(self.platform.sessions) as session:
            # A runner that lost the lease must not delete what its successor resumes from.
            if not update_leased(session, self.job_id, self.owner):
                self._lost()
                return
            prune_checkpoints(
                session, self.platform.store, self.job_id, self.settings.keep_checkpoints
            )


def _best_step(checkpoint: Path) -> int | None:
    """The step of the best evaluation so far, from the checkpoint's own trainer state."""
    from worker.training.checkpoint import STATE_FILE  # torch: only inside a job's process

    try:
        value = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))["best_step"]
    except (OSError, ValueError, KeyError):
        return None
    return value if isinstance(value, int) else None


def record_progress(
    platform: Platform, job_id: str, owner: str, attempt: int, event: dict[str, Any]
) -> bool:
    """The job's latest progress (``GET /v1/jobs/<id>``) and a ``progress`` event, for
    every job kind: training reports steps, batch inference inputs done of a total.

    Written only while ``owner`` holds the lease (False otherwise): a run frozen past it
    (SIGSTOP, a long pause) and then continued must not report into its successor's job.
    """
    progress = {**event, "attempt": attempt, "at": time.time()}
    with transaction(platform.sessions) as session:
        if not update_leased(session, job_id, owner, {"progress": progress}):
            return False
        record_event(session, job_id, "progress", data=event)
    return True


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics of an evaluation (reports stay in the model's report file)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}
