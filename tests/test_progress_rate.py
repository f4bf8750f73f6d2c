"""The smoothed throughput and ETA of a running job (tunepool.progress_rate)."""

from __future__ import annotations

import itertools

import pytest

from tunepool.progress_rate import SmoothedRate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_fast_interval_does_not_swing_the_rate() -> None:
    clock = Clock()
    rate = SmoothedRate(time_constant_s=30.0, clock=clock)
    clock.now = 10.0
    assert rate.update(samples=100)["samples"] == pytest.approx(10.0)
    # A burst (0.1 s for 10 samples: 100/s instantaneous) barely moves a 30 s average.
    clock.now = 10.1
    assert rate.update(samples=10)["samples"] == pytest.approx(
        10.0 + 90 * (1 - 2.71828 ** (-0.1 / 30)), rel=1e-3
    )
    assert rate.rate("samples") < 11


def test_a_lasting_slowdown_moves_the_rate_and_the_eta() -> None:
    clock = Clock()
    rate = SmoothedRate(time_constant_s=30.0, clock=clock)
    clock.now = 10.0
    rate.update(steps=10)  # 1 step/s
    assert rate.eta_s(100) == pytest.approx(100.0)
    etas = []
    for _ in range(12):  # then 0.25 steps/s for two minutes
        clock.now += 10.0
        rate.update(steps=2.5)
        etas.append(rate.eta_s(100))
    # The ETA is recomputed at every report and grows towards the new pace (400 s).
    assert all(later > earlier for earlier, later in itertools.pairwise(etas))
    assert 350 < etas[-1] < 400
    assert rate.total("steps") == pytest.approx(40.0)


def test_no_rate_no_eta_and_nothing_left_is_zero() -> None:
    rate = SmoothedRate(clock=Clock())
    assert rate.eta_s(10) is None
    assert rate.eta_s(0) == 0.0
    with pytest.raises(ValueError):
        SmoothedRate(time_constant_s=0)
