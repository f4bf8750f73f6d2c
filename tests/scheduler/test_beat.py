"""The system schedule is data; two real beat processes fire each tick exactly once per due time."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from commands.celery_app import make_app
from commands.embedded import child_env
from commands.redis_server import start_redis
from scheduler.beat import system_schedule
from tunepool.messages import ADMIT_TASK, HOUSEKEEPING_QUEUE, REAP_TASK
from tunepool.settings import Settings


def test_system_schedule_is_data_with_registered_tasks_on_the_housekeeping_queue() -> None:
    settings = Settings(admission_interval_s=3, reaper_interval_s=7)
    schedule = system_schedule(settings)
    app = make_app(settings)
    app.loader.import_default_modules()
    assert {"admission", "reaper", "reconciler"} <= set(schedule)
    assert schedule["admission"]["schedule"] == 3
    assert schedule["reaper"]["schedule"] == 7
    for name, entry in schedule.items():
        assert entry["task"] in app.tasks, name
        # Apart from the jobs and the admission passes asked for, under readable names.
        assert entry["options"]["queue"] == HOUSEKEEPING_QUEUE, name
        assert entry["task"] == ADMIT_TASK or entry["task"].startswith("tunepool.housekeeping."), (
            name
        )
        # A tick that waited longer than its interval is dropped: the next one does its work.
        assert 0 < entry["options"]["expires"] <= entry["schedule"], name
    assert app.conf.beat_schedule == schedule
    assert app.conf.beat_scheduler == "scheduler.single_beat:SingleBeatScheduler"


def _sends(client: redis.Redis) -> dict[str, list[float]]:
    """Send time of every tick message waiting on the housekeeping queue, by task name.

    Nothing consumes the queue here, so every message beat sent is still in it; each
    carries its absolute expiry (send time + the entry's ``expires``).
    """
    out: dict[str, list[float]] = {}
    for raw in client.lrange(HOUSEKEEPING_QUEUE, 0, -1):
        headers = json.loads(raw)["headers"]
        out.setdefault(headers["task"], []).append(
            datetime.fromisoformat(headers["expires"]).timestamp()
        )
    return {task: sorted(times) for task, times in out.items()}


@pytest.mark.chaos
def test_two_beats_fire_each_tick_once_and_the_standby_takes_over(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis", persist=False)
    settings = Settings(home=tmp_path / "home", redis_url=server.url)
    env = child_env(
        settings,
        TUNEPOOL_ADMISSION_INTERVAL_S="1",
        TUNEPOOL_REAPER_INTERVAL_S="2",
        TUNEPOOL_BEAT_LOCK_TIMEOUT_S="3",
        TUNEPOOL_BEAT_MAX_LOOP_INTERVAL_S="0.5",
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("b1", "b2"):
            with (tmp_path / f"{name}.log").open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "commands", "beat"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

        def log(name: str) -> str:
            return (tmp_path / f"{name}.log").read_text(errors="replace")

        deadline = time.monotonic() + 60
        while not any("Sending due task" in log(n) for n in procs):
            assert time.monotonic() < deadline, log("b1")[-2000:] + log("b2")[-2000:]
            time.sleep(0.2)
        time.sleep(8)  # several ticks with both beats up
        active = next(n for n in procs if "Sending due task" in log(n))
        standby = next(n for n in procs if n != active)
        assert "Sending due task" not in log(standby), "two beats sent at once"
        os.killpg(procs[active].pid, signal.SIGKILL)
        killed_at = time.time()
        procs[active].wait(10)
        time.sleep(9)  # the lock expires (3 s) and the stand-by carries on
        assert "this beat is active" in log(standby)

        sends = _sends(redis.Redis.from_url(server.url))
        for task, interval, expires in ((ADMIT_TASK, 1, 1), (REAP_TASK, 2, 2)):
            times = [t - expires for t in sends[task]]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            # Once per due time: never two sends of one tick closer than most of an interval.
            assert min(gaps) > 0.6 * interval, (task, gaps)
            before = [t for t in times if t < killed_at]
            after = [t for t in times if t > killed_at]
            assert len(before) >= 8 / interval - 1, (task, len(before))
            assert len(after) >= 5 / interval - 1, (task, len(after))
            # The take-over waited for the dead beat's lock, at most its timeout plus a tick.
            assert after[0] - before[-1] < 3 + interval + 1.5, (task, after[0] - before[-1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
        server.stop()


@pytest.mark.chaos
def test_beat_carries_on_after_redis_restarts_empty(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis", persist=False)
    settings = Settings(home=tmp_path / "home", redis_url=server.url)
    env = child_env(
        settings,
        TUNEPOOL_ADMISSION_INTERVAL_S="1",
        TUNEPOOL_BEAT_LOCK_TIMEOUT_S="3",
        TUNEPOOL_BEAT_MAX_LOOP_INTERVAL_S="0.5",
    )
    with (tmp_path / "beat.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "commands", "beat"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 60
        while not _sends(client).get(ADMIT_TASK):
            assert time.monotonic() < deadline, (tmp_path / "beat.log").read_text()[-2000:]
            time.sleep(0.2)
        server.process.kill()  # SIGKILL: lock, schedule entries and messages are gone
        server.process.wait()
        time.sleep(2)
        server = start_redis(tmp_path / "redis", port=server.port, persist=False)
        client = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 30
        while len(_sends(client).get(ADMIT_TASK, [])) < 3:
            assert time.monotonic() < deadline, (tmp_path / "beat.log").read_text()[-2000:]
            time.sleep(0.2)
        assert proc.poll() is None, "beat exited when Redis went away"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        server.stop()
