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
from collections.abc import Callable, Mapping
from typing import Any

from storage.attempts import StopReason
from worker.engines.context import EngineResult, RunContext, stopped

PREFIX = "noop:"
STEP_S = 0.1


def requested(spec: Mapping[str, Any], allowed: bool) -> str | None:
    """The behaviour a job asks for, or None if it runs the real engine."""
    name = str(spec.get("base_model") or "")
    if not allowed or not name.startswith(PREFIX):
        return None
    return name[len(PREFIX) :]


def run(ctx: RunContext) -> EngineResult:
    """The engine: what the job's ``noop:<behaviour>`` base model asks for."""
    behaviour = requested(ctx.job.spec, allowed=True) or ""
    reason = behave(behaviour, ctx.stop_requested)
    if reason is not None:
        return stopped(reason)
    return EngineResult(summary=f"no-op engine ({behaviour}) finished", metrics={"engine": "noop"})


def behave(behaviour: str, should_stop: Callable[[], StopReason | None]) -> StopReason | None:
    """Returns a stop reason like the real engine (None: finished)."""
    if behaviour == "succeed":
        return None
    if behaviour == "exit":
        os._exit(70)  # what a segfaulting CUDA kernel or the OOM killer looks like
    if behaviour.startswith("sleep="):
        deadline = time.monotonic() + float(behaviour.removeprefix("sleep="))
        while time.monotonic() < deadline:
            time.sleep(STEP_S)
            if (reason := should_stop()) is not None:
                return reason
        return None
    raise ValueError(f"unknown no-op engine behaviour {behaviour!r}")
