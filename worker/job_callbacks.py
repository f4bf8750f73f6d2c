"""The training engine's callbacks for a job: progress, lease renewal, checkpoints, stop requests.

The engine knows nothing of SQL or the object store; this is where its reports
become job events, uploaded checkpoints and a renewed lease.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.blobs import store_dir
from storage.db import transaction
from storage.lease import renew_lease, update_leased
from storage.models import Checkpoint, Job
from storage.retention import checkpoint_prefix, prune_checkpoints
from storage.states import JobState, record_event
from tunepool.platform import Platform
from worker import shutdown as worker_shutdown

log = logging.getLogger(__name__)

# How often the loop looks at the job row for a cancel or preempt request.
STATE_CHECK_S = 1.0


class JobCallbacks:
    def __init__(
        self, platform: Platform, job_id: str, team_id: str, owner: str, attempt: int
    ) -> None:
        self.platform, self.job_id, self.team_id = platform, job_id, team_id
        self.owner, self.attempt = owner, attempt
        self.settings = platform.settings
        self.lease_lost = False
        self._last_renew = time.monotonic()
        self._last_check = 0.0
        self._stop: str | None = None
        self._finished = threading.Event()
        self._last_activity = time.monotonic()

    # -- lease keeper ----------------------------------------------------------
    def start_lease_keeper(self) -> None:
        """Renew from a thread for the whole run, as long as the run shows signs of life.

        Downloads, imports, evaluation and the final upload call no step callback, yet
        must not lose the lease; a loop that made no progress for ``loop_stall_s`` is
        hung, stops being renewed, and loses its lease to the reaper (DESIGN §3).
        """

        def renew() -> None:
            while not self._finished.wait(self.settings.lease_renew_s):
                stalled = time.monotonic() - self._last_activity
                if stalled > self.settings.loop_stall_s:
                    log.error(
                        "job %s: no progress for %.0fs; letting the lease expire",
                        self.job_id,
                        stalled,
                    )
                    return
                if not self._renew():
                    return

        threading.Thread(target=renew, name=f"lease-{self.job_id}", daemon=True).start()

    def stop_lease_keeper(self) -> None:
        self._finished.set()

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    # -- lease ---------------------------------------------------------------
    def _renew(self) -> bool:
        with transaction(self.platform.sessions) as session:
            ok = renew_lease(session, self.job_id, self.owner, self.settings.lease_ttl_s)
        self._last_renew = time.monotonic()
        if not ok and not self.lease_lost:
            log.warning("job %s: lease of %s lost; stopping", self.job_id, self.owner)
            self.lease_lost = True
        return ok

    def still_leased(self) -> bool:
        """Renew now: whether this runner still holds the lease (before an upload that
        only the lease holder may make)."""
        return self._renew()

    def should_stop(self) -> str | None:
        self._touch()
        now = time.monotonic()
        if now - self._last_renew >= self.settings.lease_renew_s and not self._renew():
            return "lease_lost"
        if self.lease_lost:
            return "lease_lost"
        if self._stop is None and now - self._last_check >= STATE_CHECK_S:
            self._last_check = now
            with self.platform.sessions() as session:
                state = session.scalar(select(Job.state).where(Job.id == self.job_id))
            if state == JobState.CANCELLING.value:
                self._stop = "cancel"
            elif state == JobState.PREEMPTING.value:
                self._stop = "preempt"
        if self._stop is None and worker_shutdown.requested():
            return "shutdown"  # SIGTERM: checkpoint, give the job back (worker.shutdown)
        return self._stop

    # -- reports -------------------------------------------------------------
    def on_progress(self, event: dict[str, Any]) -> None:
        self._touch()
        # Written only while this runner holds the lease: a run frozen past it (SIGSTOP,
        # a long GC pause) and then continued must not report into its successor's job.
        progress = {**event, "attempt": self.attempt, "at": time.time()}
        with transaction(self.platform.sessions) as session:
            if not update_leased(session, self.job_id, self.owner, {"progress": progress}):
                self.lease_lost = True
                return
            record_event(session, self.job_id, "progress", data=event)
        log.info(
            "step %s epoch %.2f loss %.4f %.0f tokens/s",
            event.get("step"),
            float(event.get("epoch") or 0),
            float(event.get("loss") or 0),
            float(event.get("tokens_per_s") or 0),
        )

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        self._touch()
        with transaction(self.platform.sessions) as session:
            # Lock the row under the lease first, so the metrics read are the ones updated.
            if not update_leased(session, self.job_id, self.owner):
                self.lease_lost = True
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
        self._touch()
        """Upload the checkpoint; record it only while this runner still holds the lease."""
        if not self._renew():
            return
        prefix = checkpoint_prefix(self.team_id, self.job_id, step)
        with transaction(self.platform.sessions) as session:
            store_dir(session, self.platform.store, prefix, path)
        with transaction(self.platform.sessions) as session:
            if not renew_lease(session, self.job_id, self.owner, self.settings.lease_ttl_s):
                self.lease_lost = True
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
                self.lease_lost = True
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


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics of an evaluation (reports stay in the model's report file)."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool)}
