"""How submits, schedules and finished retrains wake the scheduler (``tunepool.admission_ask``)."""

from __future__ import annotations

from scheduler.ticks import run_admission
from storage.platform import Platform
from tunepool.admission_ask import ask_for_admission


def request_admission(platform: Platform) -> bool:
    """True if a pass ran here and then (the caller's rows may have changed), else False.

    Inline mode (``admission_coalesce_s = 0``) runs the pass in this process.
    """
    return ask_for_admission(platform, lambda: run_admission(platform))
