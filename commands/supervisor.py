"""Restart what dies: the children of ``tunepool up``, each with exponential backoff.

A child that exits is started again after ``first_s``, then twice as long after each
exit that follows quickly, up to ``max_s``; one that stayed up for ``stable_s`` counts
as healthy again, so its next exit restarts it after ``first_s``. Every exit and
every restart is logged. The loop is ours (a few lines) rather than a retry
library's: tenacity and backoff decorate a call that fails, while this watches
processes that end, each on its own clock, from one polling loop.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Starter = Callable[[], subprocess.Popen[bytes]]


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    max_s: float = 60.0
    stable_s: float = 30.0

    def delay(self, quick_exits: int) -> float:
        """Seconds before restart number ``quick_exits`` (1 = the first) of a run of quick exits."""
        return float(min(self.max_s, self.first_s * 2 ** max(0, quick_exits - 1)))


@dataclass
class Child:
    name: str
    start: Starter
    process: subprocess.Popen[bytes]
    started_at: float
    quick_exits: int = 0
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.children: dict[str, Child] = {}

    def add(self, name: str, start: Starter) -> subprocess.Popen[bytes]:
        """Start a child now and watch it from then on."""
        return self.adopt(name, start(), start)

    def adopt(
        self, name: str, process: subprocess.Popen[bytes], start: Starter
    ) -> subprocess.Popen[bytes]:
        """Watch a child that is already running; ``start`` brings it back."""
        self.children[name] = Child(name, start, process, time.monotonic())
        return process

    def check(self, now: float | None = None) -> list[str]:
        """Notice exits, restart those whose wait is over; the names restarted."""
        now = time.monotonic() if now is None else now
        restarted: list[str] = []
        for child in self.children.values():
            if child.restart_at is None:
                code = child.process.poll()
                if code is None:
                    continue
                stable = now - child.started_at >= self.backoff.stable_s
                child.quick_exits = 1 if stable else child.quick_exits + 1
                wait = self.backoff.delay(child.quick_exits)
                child.restart_at = now + wait
                log.warning(
                    "%s exited with code %s after %.0f s; restarting in %.1f s",
                    child.name,
                    code,
                    now - child.started_at,
                    wait,
                )
            if now >= child.restart_at:
                self._restart(child, now)
                if child.restart_at is None:
                    restarted.append(child.name)
        return restarted

    def _restart(self, child: Child, now: float) -> None:
        try:
            child.process = child.start()
        except Exception as exc:
            # A start that fails (a port still taken, a binary gone) waits longer, like an exit.
            child.quick_exits += 1
            wait = self.backoff.delay(child.quick_exits)
            child.restart_at = now + wait
            log.error("%s could not be restarted (%s); next try in %.1f s", child.name, exc, wait)
            return
        child.started_at, child.restart_at = time.monotonic(), None
        child.restarts += 1
        log.warning(
            "%s restarted (pid %d, restart %d)", child.name, child.process.pid, child.restarts
        )

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: child.process for name, child in self.children.items()}
