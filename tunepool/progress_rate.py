"""Throughput and time left of a running job, smoothed over time.

A rate measured over the last few steps swings widely (a batch of long sentences, an
evaluation pass, a checkpoint upload: 0.8 to 108 samples/s seen in one run), and an
ETA from the whole run's average reacts to a slowdown only after minutes. An
exponential moving average weighted by elapsed time sits between the two: each new
interval counts by how long it lasted (``1 - exp(-dt / time_constant_s)``), so a
burst of quick reports does not outweigh one long, slow interval, and the estimate
follows a lasting change within about one time constant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class SmoothedRate:
    """Counts per second (steps, samples, tokens) and the ETA of the steps left.

    ``update`` is called at every progress report with what was done since the last
    one; the rates and :meth:`eta_s` are recomputed from the smoothed values each time.
    """

    def __init__(
        self,
        time_constant_s: float = 30.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if time_constant_s <= 0:
            raise ValueError("time_constant_s must be positive")
        self.time_constant_s = time_constant_s
        self.clock = clock
        self._last = clock()
        self._rates: dict[str, float] = {}
        self._totals: dict[str, float] = {}

    def restart(self) -> None:
        """Forget the time spent so far (e.g. model loading before the first step)."""
        self._last = self.clock()

    def update(self, **counts: float) -> dict[str, float]:
        """Counts done since the previous update; returns the smoothed rates per second."""
        now = self.clock()
        elapsed = max(now - self._last, 1e-9)
        self._last = now
        weight = 1.0 - math.exp(-elapsed / self.time_constant_s)
        for name, count in counts.items():
            self._totals[name] = self._totals.get(name, 0) + count
            current = count / elapsed
            previous = self._rates.get(name)
            # The first interval has nothing to average with: it is the estimate.
            self._rates[name] = (
                current if previous is None else previous + weight * (current - previous)
            )
        return dict(self._rates)

    def rate(self, name: str) -> float | None:
        return self._rates.get(name)

    def total(self, name: str) -> float:
        """Everything counted under ``name`` since this meter was made."""
        return self._totals.get(name, 0)

    def eta_s(self, remaining: float, name: str = "steps") -> float | None:
        """Seconds until ``remaining`` more ``name`` are done at the smoothed rate."""
        rate = self._rates.get(name)
        if remaining <= 0:
            return 0.0
        if not rate or rate <= 0:
            return None
        return remaining / rate
