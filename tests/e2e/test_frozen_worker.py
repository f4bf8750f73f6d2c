"""A worker frozen with SIGSTOP: its job moves on to a live worker within seconds, and the
frozen run, once continued (SIGCONT), stops without writing anything.

Real worker processes, real signals, the no-op engine (no torch) and short leases and
heartbeats, so the whole story takes well under a minute.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from typing import Any

import pytest
from sqlalchemy import select

from storage.models import Checkpoint, Job, JobEvent, JobRun, StoredObject, Worker
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.invariants import assert_invariants, runs_of
from tests.e2e.test_chaos import noop_job, reaper_every
from tests.e2e.test_pool import wait_registered
from tests.e2e.test_training_job import api, job_state, upload
from tunepool.processes import process_alive

pytestmark = pytest.mark.chaos

TIMING = {
    "lease_ttl_s": 3.0,
    "lease_renew_s": 0.5,
    "worker_heartbeat_s": 0.5,
    "worker_stale_after_s": 2.0,
    # Far away: the frozen worker is only silent here, never declared lost, so what
    # moves its job is the expired lease and the stale heartbeat alone.
    "worker_lost_after_s": 300.0,
}


def _database_path(live: WorkerProcs) -> str:
    url = live.platform.settings.resolved_database_url
    assert url.startswith("sqlite:///"), url
    return url.removeprefix("sqlite:///")


def _write_lock_free(path: str) -> bool:
    connection = sqlite3.connect(path, timeout=1.0, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()


def freeze(live: WorkerProcs, name: str) -> None:
    """SIGSTOP the worker's whole process tree at a moment it is in no SQL transaction.

    Every SQLite transaction here takes the database's write lock (BEGIN IMMEDIATE): a
    process frozen inside one would stop every process, not just its own worker. So the
    tree is stopped, and continued and stopped again a moment later if it held the lock.
    """
    group, path = live.procs[name].pid, _database_path(live)
    for _ in range(50):
        os.killpg(group, signal.SIGSTOP)
        if _write_lock_free(path):
            return
        os.killpg(group, signal.SIGCONT)
        time.sleep(random.uniform(0.01, 0.1))
    raise AssertionError(f"could not freeze {name} outside a transaction")


def snapshot(live: WorkerProcs, job_id: str) -> dict[str, Any]:
    """Everything a run can write about its job."""
    columns = (
        "state",
        "reason_code",
        "reason",
        "worker_name",
        "attempt",
        "lease_owner",
        "lease_until",
        "progress",
        "metrics",
        "error",
        "finished_at",
    )
    with live.platform.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        ).all()
        runs = session.scalars(
            select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.id)
        ).all()
        return {
            "job": {c: getattr(job, c) for c in columns},
            "events": [(e.id, e.kind, e.new_state, e.reason, e.data) for e in events],
            "runs": [
                (r.attempt, r.worker_name, r.lease_owner, r.lease_until, r.ended_at, r.outcome)
                for r in runs
            ],
            "checkpoints": session.scalars(select(Checkpoint.id)).all(),
            "objects": sorted(session.scalars(select(StoredObject.key)).all()),
        }


def test_a_frozen_workers_job_runs_elsewhere_and_the_thawed_run_writes_nothing(
    live: WorkerProcs,
) -> None:
    live.allow_noop_engine()
    live.env.update({f"TUNEPOOL_{key.upper()}": str(value) for key, value in TIMING.items()})
    for key, value in TIMING.items():  # this process runs the reaper and admission
        setattr(live.platform.settings, key, value)
    client, headers = api(live)
    train = upload(client, headers, 20, 1)
    live.start("wA")
    wait_registered(live, "wA")
    # Long enough that the frozen run is still inside its loop when it is continued.
    job_id = noop_job(client, headers, train, "sleep=120")
    wait_until(lambda: job_state(live, job_id).state == "running", 60, "the job to run on wA")
    assert job_state(live, job_id).worker_name == "wA"
    live.start("wB")
    wait_registered(live, "wB")

    freeze(live, "wA")
    frozen_at = time.monotonic()
    wait_until(
        lambda: (job := job_state(live, job_id)).state == "running" and job.worker_name == "wB",
        30,
        "the job to run on wB while wA is frozen",
        every_s=0.1,
        on_tick=reaper_every(live, 0.5),
    )
    moved_in = time.monotonic() - frozen_at
    # The lease (3 s) runs out, the reaper returns the job, admission places it on wB.
    assert moved_in < 15, moved_in
    with live.platform.sessions() as session:
        placed_on = [
            (e.data or {}).get("worker")
            for e in session.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.new_state == "queued")
                .order_by(JobEvent.id)
            )
        ]
    assert placed_on == ["wA", "wB"], "the frozen worker was given the job again"

    # End the job on wB (a cancel is the quickest end); the frozen run knows none of this.
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 200
    wait_until(
        lambda: job_state(live, job_id).state == "cancelled",
        30,
        "wB's run to stop on the cancel",
        on_tick=reaper_every(live, 0.5),
    )
    stale, current = runs_of(live.platform, job_id)
    assert stale.worker_name == "wA" and stale.outcome == "lease_expired" and stale.pid
    # wB's run still writes after the job's end (its checkpoint retention): the snapshot
    # of what a thawed run must not change is taken once that process is gone.
    assert current.worker_name == "wB" and current.pid
    wait_until(lambda: not process_alive(current.pid or 0), 30, "wB's run process to end")
    before = snapshot(live, job_id)

    thawed_at = time.time()
    os.killpg(live.procs["wA"].pid, signal.SIGCONT)
    # The thawed run finds its lease gone and ends; its process exits (one task per child).
    wait_until(lambda: not process_alive(stale.pid or 0), 30, "the stale run's process to end")

    def beat_again() -> bool:
        with live.platform.sessions() as session:
            worker = session.get(Worker, "wA")
            return worker is not None and worker.heartbeat_at > thawed_at

    wait_until(beat_again, 30, "wA to heartbeat again")
    time.sleep(1.5)  # past the log flusher's period: anything buffered has been tried
    assert snapshot(live, job_id) == before, "the thawed run wrote about a job it lost"
    assert "lease of" in live.log("wA") and "lost; stopping" in live.log("wA")
    assert_invariants(live.platform, {job_id: "cancelled"})
