"""The usage ledger: GPU time per team, decayed for fair share and summed for budgets.

Every run records its slots and its start/end (JobRun), so usage is derived from
SQL, never kept as a counter that a crash could leave wrong.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from storage.models import Job, JobRun


def _runs(session: Session, since: float, now: float) -> list[tuple[str, int, float, float]]:
    """(team, slots, start, end) of every run overlapping [since, now].

    A run still going (or whose process died) counts up to its lease: past that
    nobody held the slots.
    """
    rows = session.execute(
        select(Job.team_id, JobRun.slots, JobRun.started_at, JobRun.ended_at, JobRun.lease_until)
        .join(Job, Job.id == JobRun.job_id)
        .where(or_(JobRun.ended_at.is_(None), JobRun.ended_at > since))
    ).all()
    runs = []
    for team, slots, started, ended, lease_until in rows:
        end = min(now, ended if ended is not None else max(lease_until, started))
        start = max(started, since)
        if end > start:
            runs.append((team, slots, start, end))
    return runs


def decayed_usage(
    session: Session, half_life_s: float, now: float | None = None
) -> dict[str, float]:
    """Per team: GPU-seconds with exponential decay, expressed in GPUs.

    A team that kept g GPUs busy for ever scores g, so usage is comparable with the
    current allocation and with a team's weight.
    """
    now = now or time.time()
    rate = math.log(2) / half_life_s
    usage: dict[str, float] = defaultdict(float)
    # Older runs weigh under 1/256: leave them out.
    for team, slots, start, end in _runs(session, now - 8 * half_life_s, now):
        # Integral of slots * rate * exp(-rate (now - t)) dt over [start, end].
        usage[team] += slots * (math.exp(-rate * (now - end)) - math.exp(-rate * (now - start)))
    return dict(usage)


def gpu_hours_by_team(session: Session, since: float, now: float | None = None) -> dict[str, float]:
    """GPU-hours each team's runs used since the given time (budgets, /teams/me)."""
    now = now or time.time()
    hours: dict[str, float] = defaultdict(float)
    for team, slots, start, end in _runs(session, since, now):
        hours[team] += slots * (end - start) / 3600.0
    return dict(hours)


def period_start(period_days: float, now: float | None = None) -> float:
    """Budgets run over fixed periods counted from the epoch (UTC), e.g. 30 days."""
    now = now or time.time()
    length = period_days * 86400
    return now - (now % length)
