"""Engines that train nothing, for fault tests and the load benchmark.

A fine-tune whose ``base_model`` is ``noop:<behaviour>`` runs one of these instead of
the training engine, but only with ``TUNEPOOL_ALLOW_NOOP_ENGINE=1`` (never on by
default): elsewhere the API refuses the name at submit like any base model that is not
allowed (storage.base_models), and a worker fails such a job. They measure and exercise
the platform (claim, lease, state machine, stop requests) without torch:

- ``noop:succeed``: finish at once;
- ``noop:sleep=<seconds>``: "train" that long in 0.1 s steps, renewing the lease and
  honouring cancel, preempt and shutdown requests like the real loop;
- ``noop:exit``: the process dies (``os._exit``) every time, a poison job.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

PREFIX = "noop:"
STEP_S = 0.1


class StopSource(Protocol):
    def should_stop(self) -> str | None: ...


def requested(spec: dict[str, Any], allowed: bool) -> str | None:
    """The behaviour a job asks for, or None if it runs the real engine."""
    name = str(spec.get("base_model") or "")
    if not allowed or not name.startswith(PREFIX):
        return None
    return name[len(PREFIX) :]


def run(behaviour: str, callbacks: StopSource) -> str | None:
    """Returns a stop reason like the real engine (None: finished)."""
    if behaviour == "succeed":
        return None
    if behaviour == "exit":
        os._exit(70)  # what a segfaulting CUDA kernel or the OOM killer looks like
    if behaviour.startswith("sleep="):
        deadline = time.monotonic() + float(behaviour.removeprefix("sleep="))
        while time.monotonic() < deadline:
            time.sleep(STEP_S)
            if (reason := callbacks.should_stop()) is not None:
                return reason
        return None
    raise ValueError(f"unknown no-op engine behaviour {behaviour!r}")
