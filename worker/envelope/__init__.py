"""The one run envelope every job goes through (``run_job``); see ``worker.envelope.run``."""

from worker.envelope.outcome import record_stop
from worker.envelope.run import run_job

__all__ = ["record_stop", "run_job"]
