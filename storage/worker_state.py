"""A worker's state (``workers.state``) and its one writer.

Admission places jobs only on ``alive`` workers; the pool marks a worker ``stopped`` when
it shuts down cleanly and ``lost`` when its heartbeats stop (its jobs then resume elsewhere).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage.models import Worker


class WorkerState(enum.StrEnum):
    ALIVE = "alive"  # heartbeating; admission may place jobs on it
    STOPPED = "stopped"  # shut down cleanly
    LOST = "lost"  # silent for too long; its jobs went back to pending


def set_worker_state(worker: Worker, state: WorkerState) -> None:
    """The one writer of ``workers.state`` (a registered row starts ``alive``)."""
    worker.state = WorkerState(state).value
