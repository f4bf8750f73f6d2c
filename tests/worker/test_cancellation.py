"""Cancel escalation on the worker's host: SIGTERM after the grace, SIGKILL after twice it,
and `cancelled` only once the process is gone."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Job, JobEvent, JobRun, Team
from storage.states import record_event
from tunepool.processes import process_alive
from worker.cancellation import enforce_cancellations

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def cancelling_job(sessions: sessionmaker[Session], pid: int, asked_at: float) -> str:
    with sessions() as session:
        team = Team(name="cancel-team")
        session.add(team)
        session.flush()
        job = Job(
            team_id=team.id,
            type="finetune",
            task="token-classification",
            spec={},
            state="cancelling",
            worker_name="w1",
            lease_owner="w1/x",
            lease_until=asked_at + 60,
        )
        session.add(job)
        session.flush()
        session.add(
            JobRun(
                job_id=job.id,
                attempt=1,
                worker_name="w1",
                lease_owner="w1/x",
                started_at=asked_at - 10,
                lease_until=asked_at + 60,
                pid=pid,
            )
        )
        record_event(session, job.id, "state", old="running", new="cancelling", reason="test")
        session.commit()
        session.execute(JobEvent.__table__.update().values(at=asked_at))
        session.commit()
        return job.id


def test_a_process_that_ignores_the_cancel_is_terminated_then_killed(
    sessions: sessionmaker[Session],
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN])
    try:
        time.sleep(0.5)  # let it install its SIGTERM handler
        t0 = time.time()
        job_id = cancelling_job(sessions, proc.pid, t0)
        sent: list[int] = []

        def send(pid: int, sig: int) -> None:
            sent.append(sig)
            import os

            os.kill(pid, sig)

        with sessions() as session:
            assert enforce_cancellations(session, "w1", 30, now=t0 + 1, send=send) == []
            assert sent == []  # within the grace: the loop is still expected to stop by itself
            assert enforce_cancellations(session, "w1", 30, now=t0 + 31, send=send) == []
            session.commit()
        time.sleep(0.3)
        assert process_alive(proc.pid), "the stubborn process should survive SIGTERM"
        with sessions() as session:
            assert enforce_cancellations(session, "w1", 30, now=t0 + 61, send=send) == []
            session.commit()
        proc.wait(10)
        assert not process_alive(proc.pid)
        with sessions() as session:
            assert enforce_cancellations(session, "w1", 30, now=t0 + 62, send=send) == [job_id]
            session.commit()
            job = session.get(Job, job_id)
            run = session.scalar(select(JobRun).where(JobRun.job_id == job_id))
            assert job is not None and job.state == "cancelled"
            assert run is not None and run.outcome == "cancelled"
        import signal

        assert sent == [signal.SIGTERM, signal.SIGKILL]
    finally:
        if proc.poll() is None:
            proc.kill()
