"""A running job's lease, held from its claim to its end: one keeper for every job kind.

Training, evaluation, batch inference and compress all renew the same way (DESIGN §3):
a thread renews every ``lease_renew_s`` whatever the run is doing (starting up,
downloading, loading a model, predicting a long chunk, uploading), so no slow phase
outlives the lease. Renewing only between units of work let process start, model
load and a first chunk of 512 sentences outlive a 60 s lease on a busy machine, and
the job was retried until it failed (issue 20).

Renewal stops when the lease is lost, or when the run has shown no sign of life
(``alive()``) for ``loop_stall_s``: a hung run stops being renewed and loses its lease
to the reaper. The run itself asks ``stop_reason()`` at its safe points.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from sqlalchemy import select

from storage.attempts import StopReason
from storage.db import transaction
from storage.lease import renew_lease
from storage.models import Job
from storage.platform import Platform
from storage.states import JobState

log = logging.getLogger(__name__)

# How often stop_reason() looks at the job row for a cancel or preempt request.
STATE_CHECK_S = 1.0


class LeaseKeeper:
    def __init__(self, platform: Platform, job_id: str, owner: str) -> None:
        self.platform, self.job_id, self.owner = platform, job_id, owner
        self.settings = platform.settings
        self.lease_lost = False
        self._finished = threading.Event()
        self._last_activity = time.monotonic()
        self._last_check = 0.0
        self._requested: StopReason | None = None

    def __enter__(self) -> LeaseKeeper:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        threading.Thread(target=self._keep, name=f"lease-{self.job_id}", daemon=True).start()

    def stop(self) -> None:
        self._finished.set()

    def alive(self) -> None:
        """The run made progress: keep renewing."""
        self._last_activity = time.monotonic()

    def _keep(self) -> None:
        while not self._finished.wait(self.settings.lease_renew_s):
            stalled = time.monotonic() - self._last_activity
            if stalled > self.settings.loop_stall_s:
                log.error(
                    "job %s: no progress for %.0fs; letting the lease expire", self.job_id, stalled
                )
                return
            try:
                if not self.renew():
                    return
            except Exception:
                # A database that is briefly away (or locked) is not a lost lease: the
                # next tick tries again, well within the lease's TTL.
                log.warning(
                    "job %s: renewing the lease failed; retrying", self.job_id, exc_info=True
                )

    def renew(self) -> bool:
        """Renew now; False (and ``lease_lost``) if another runner or the reaper has the job."""
        with transaction(self.platform.sessions) as session:
            ok = renew_lease(session, self.job_id, self.owner, self.settings.lease_ttl_s)
        if not ok and not self.lease_lost:
            log.warning("job %s: lease of %s lost; stopping", self.job_id, self.owner)
            self.lease_lost = True
        return ok

    def stop_reason(self) -> StopReason | None:
        """Lease lost, cancel or preempt when the run should stop, else None."""
        self.alive()
        if self.lease_lost:
            return StopReason.LEASE_LOST
        now = time.monotonic()
        if self._requested is None and now - self._last_check >= STATE_CHECK_S:
            self._last_check = now
            with self.platform.sessions() as session:
                state = session.scalar(select(Job.state).where(Job.id == self.job_id))
            if state == JobState.CANCELLING.value:
                self._requested = StopReason.CANCEL
            elif state == JobState.PREEMPTING.value:
                self._requested = StopReason.PREEMPT
        return self._requested
