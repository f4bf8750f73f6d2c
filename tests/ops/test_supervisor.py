"""The supervisor of `tunepool up` restarts a killed child, waiting longer after each quick exit."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from commands.supervisor import Backoff, Supervisor
from tunepool.processes import process_alive


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    sup = Supervisor(Backoff(first_s=0.2, max_s=0.8, stable_s=30.0))
    yield sup
    for child in sup.children.values():
        child.process.kill()
        child.process.wait()


def restart_within(sup: Supervisor, name: str, timeout_s: float) -> float:
    started = time.monotonic()
    while name not in sup.check():
        assert time.monotonic() - started < timeout_s, f"{name} was not restarted"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_killed_child_is_restarted_and_logged(
    supervisor: Supervisor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="commands.supervisor")
    first = supervisor.add("sleeper", sleeper)
    assert supervisor.check() == []  # alive: nothing to do
    first.send_signal(signal.SIGKILL)
    first.wait()
    waited = restart_within(supervisor, "sleeper", 5)
    second = supervisor.children["sleeper"].process
    assert second.pid != first.pid and process_alive(second.pid)
    assert waited >= 0.15  # the backoff's first wait, not a hot loop
    assert "sleeper exited with code -9" in caplog.text
    assert "sleeper restarted" in caplog.text


def test_quick_exits_double_the_wait_up_to_the_cap_and_a_stable_run_resets_it(
    supervisor: Supervisor,
) -> None:
    supervisor.add("sleeper", sleeper)
    child = supervisor.children["sleeper"]
    waits = []
    for _ in range(4):
        child.process.kill()
        child.process.wait()
        now = child.started_at + 1.0  # died one second after its start: a quick exit
        assert supervisor.check(now=now) == []
        assert child.restart_at is not None
        waits.append(round(child.restart_at - now, 3))
        assert supervisor.check(now=child.restart_at) == ["sleeper"]
    assert waits == [0.2, 0.4, 0.8, 0.8]
    child.process.kill()
    child.process.wait()
    later = child.started_at + 60.0  # up for a minute: healthy, so the wait starts over
    supervisor.check(now=later)
    assert child.restart_at == pytest.approx(later + 0.2)
    assert child.restarts == 4


def test_a_failed_restart_is_retried_after_a_longer_wait(supervisor: Supervisor) -> None:
    attempts: list[int] = []

    def flaky() -> subprocess.Popen[bytes]:
        attempts.append(1)
        if len(attempts) == 2:
            raise OSError("port still taken")
        return sleeper()

    supervisor.add("flaky", flaky)
    child = supervisor.children["flaky"]
    child.process.kill()
    child.process.wait()
    now = child.started_at + 1.0
    supervisor.check(now=now)
    assert child.restart_at is not None
    assert supervisor.check(now=child.restart_at) == []  # the start raised
    assert child.restart_at == pytest.approx(now + 0.2 + 0.4)
    assert supervisor.check(now=child.restart_at) == ["flaky"]
    assert process_alive(child.process.pid)
