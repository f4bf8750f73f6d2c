"""The usage ledger: GPU-hours in a period and decayed usage in GPUs, from JobRun rows."""

from __future__ import annotations

import math

from sqlalchemy.orm import Session, sessionmaker

from scheduler.usage import decayed_usage, gpu_hours_by_team
from storage.models import Job, JobRun, Team

NOW = 2_000_000.0


def run(
    session: Session, team: Team, slots: int, start: float, end: float | None, lease_until: float
) -> None:
    job = Job(
        team_id=team.id,
        type="finetune",
        task="token-classification",
        spec={},
        state="running" if end is None else "succeeded",
    )
    session.add(job)
    session.flush()
    session.add(
        JobRun(
            job_id=job.id,
            attempt=1,
            worker_name="w",
            lease_owner=f"o{job.id}",
            started_at=start,
            ended_at=end,
            lease_until=lease_until,
            slots=slots,
        )
    )


def test_gpu_hours_and_decayed_usage(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        a, b = Team(name="a"), Team(name="b")
        session.add_all([a, b])
        session.flush()
        run(session, a, 2, NOW - 7200, NOW - 3600, NOW - 3600)  # 2 GPUs for an hour, done
        run(session, a, 1, NOW - 1800, None, NOW + 60)  # running for half an hour
        run(session, b, 4, NOW - 600, None, NOW - 300)  # died: counts up to its lease
        session.commit()
        hours = gpu_hours_by_team(session, since=NOW - 86400, now=NOW)
        assert math.isclose(hours[a.id], 2.5) and math.isclose(hours[b.id], 4 * 300 / 3600)
        # Only the part of a run inside the period counts.
        assert math.isclose(gpu_hours_by_team(session, since=NOW - 5400, now=NOW)[a.id], 1.5)
        usage = decayed_usage(session, half_life_s=3600, now=NOW)
        rate = math.log(2) / 3600
        expected_a = 2 * (math.exp(-rate * 3600) - math.exp(-rate * 7200)) + (
            1 - math.exp(-rate * 1800)
        )
        assert math.isclose(usage[a.id], expected_a, rel_tol=1e-9)
        assert usage[b.id] < 4
