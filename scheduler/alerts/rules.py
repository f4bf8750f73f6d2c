"""Alert rules: each looks at SQL (and the backup status) and returns what is firing now.

A rule returns every condition that holds at ``now``; the engine turns them into
incidents. Subjects name the thing the alert is about, so one stuck job is one
incident however often the rule runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scheduler.wait_board import read_board
from storage.models import Job, Team, Worker
from storage.objects.base import ObjectStore
from storage.states import HOLDING_SLOTS, UNREADABLE, JobState
from storage.worker_state import WorkerState
from tunepool.redis_client import redis_client
from tunepool.settings import Settings

S = JobState


@dataclass(frozen=True)
class Firing:
    rule: str
    subject: str
    summary: str
    team_id: str | None = None  # None: pool-wide (shown to admins)
    severity: str = "warning"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    session: Session
    settings: Settings
    store: ObjectStore | None
    now: float


Rule = Callable[[Context], list[Firing]]


def job_failed(ctx: Context) -> list[Firing]:
    since = ctx.now - ctx.settings.alert_failed_window_s
    jobs = ctx.session.scalars(
        select(Job).where(Job.state == S.FAILED.value, Job.finished_at >= since)
    )
    return [
        Firing(
            "job_failed",
            f"job:{j.id}",
            f"job {j.id} ({j.type}, model {j.model_name}) failed: {(j.error or '?')[:300]}",
            team_id=j.team_id,
            severity="error",
            details={"job_id": j.id, "error": j.error, "attempt": j.attempt},
        )
        for j in jobs
    ]


def job_set_aside(ctx: Context) -> list[Firing]:
    """A job the scheduler could not read and failed so that the pool goes on: a bug or
    a hand-edited row, for the operators (the owning team sees it as job_failed)."""
    since = ctx.now - ctx.settings.alert_failed_window_s
    jobs = ctx.session.execute(
        select(Job.id, Job.team_id, Job.error).where(
            Job.state == S.FAILED.value, Job.reason_code == UNREADABLE, Job.finished_at >= since
        )
    )
    return [
        Firing(
            "job_set_aside",
            f"job:{job_id}",
            f"job {job_id} of team {team} set aside: {(error or '?')[:300]}",
            severity="error",
            details={"job_id": job_id, "team_id": team, "error": error},
        )
        for job_id, team, error in jobs
    ]


def job_pending_too_long(ctx: Context) -> list[Firing]:
    limit = ctx.settings.alert_pending_after_s
    jobs = ctx.session.scalars(
        select(Job).where(Job.state == S.PENDING.value, Job.created_at < ctx.now - limit)
    ).all()
    # Positions live on the admission pass's wait board; unknown if Redis cannot be read.
    places = read_board(redis_client(ctx.settings.redis_url), [j.id for j in jobs])
    return [
        Firing(
            "job_pending",
            f"job:{j.id}",
            f"job {j.id} pending for {(ctx.now - j.created_at) / 60:.0f} min: "
            f"{j.reason_code or 'unknown'} ({j.reason or 'no reason given'}), "
            f"position {places[j.id].position if j.id in places else 'unknown'}",
            team_id=j.team_id,
            details={
                "job_id": j.id,
                "reason_code": j.reason_code,
                "reason": j.reason,
                "queue_position": places[j.id].position if j.id in places else None,
                "pending_s": round(ctx.now - j.created_at, 1),
            },
        )
        for j in jobs
    ]


def worker_lost(ctx: Context) -> list[Firing]:
    workers = ctx.session.scalars(select(Worker).where(Worker.state == WorkerState.LOST.value))
    return [
        Firing(
            "worker_lost",
            f"worker:{w.name}",
            f"worker {w.name} on {w.hostname} lost: no heartbeat since "
            f"{(ctx.now - w.heartbeat_at):.0f}s ago ({w.slots} slot(s))",
            severity="error",
            details={"worker": w.name, "hostname": w.hostname, "slots": w.slots},
        )
        for w in workers
    ]


def _used_slots(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Job.worker_name, func.sum(Job.slots))
        .where(Job.state.in_([s.value for s in HOLDING_SLOTS]), Job.worker_name.is_not(None))
        .group_by(Job.worker_name)
    ).all()
    return {str(name): int(total or 0) for name, total in rows}


def gpus_idle_while_jobs_wait(ctx: Context) -> list[Firing]:
    used = _used_slots(ctx.session)
    free = {
        w.name: w.slots - used.get(w.name, 0)
        for w in ctx.session.scalars(select(Worker).where(Worker.state == WorkerState.ALIVE.value))
    }
    most_free = max(free.values(), default=0)
    if most_free <= 0:
        return []
    # Admissible: it fits a worker's free slots and is not held back by its team's quota.
    waiting = ctx.session.scalars(
        select(Job).where(
            Job.state == S.PENDING.value,
            Job.created_at < ctx.now - ctx.settings.alert_idle_after_s,
            Job.slots <= most_free,
        )
    ).all()
    waiting = [j for j in waiting if "quota" not in (j.reason_code or "")]
    if not waiting:
        return []
    return [
        Firing(
            "gpus_idle",
            "pool",
            f"{sum(v for v in free.values() if v > 0)} slot(s) idle while {len(waiting)} "
            f"admissible job(s) wait (oldest {waiting[0].id}); is admission running?",
            severity="error",
            details={"free": free, "waiting": [j.id for j in waiting[:20]]},
        )
    ]


def queue_too_deep(ctx: Context) -> list[Firing]:
    depth = ctx.session.scalar(
        select(func.count()).select_from(Job).where(Job.state == S.PENDING.value)
    )
    limit = ctx.settings.alert_queue_depth
    if not depth or depth <= limit:
        return []
    return [
        Firing(
            "queue_deep",
            "pool",
            f"{depth} jobs pending (threshold {limit})",
            details={"pending": depth, "threshold": limit},
        )
    ]


def team_quota_nearly_spent(ctx: Context) -> list[Firing]:
    rows = ctx.session.execute(
        select(Job.team_id, func.sum(Job.slots))
        .where(Job.state.in_([s.value for s in HOLDING_SLOTS]))
        .group_by(Job.team_id)
    ).all()
    held = {str(t): int(n or 0) for t, n in rows}
    out: list[Firing] = []
    for team in ctx.session.scalars(select(Team).where(Team.max_gpus.is_not(None))):
        if not team.max_gpus:
            continue
        ratio = held.get(team.id, 0) / team.max_gpus
        if ratio >= ctx.settings.alert_quota_ratio:
            out.append(
                Firing(
                    "quota_nearly_spent",
                    f"team:{team.id}",
                    f"team {team.name} uses {held.get(team.id, 0)} of its {team.max_gpus} "
                    f"GPU(s) ({ratio:.0%})",
                    team_id=team.id,
                    details={"used": held.get(team.id, 0), "max_gpus": team.max_gpus},
                )
            )
    return out


def backup_problems(ctx: Context) -> list[Firing]:
    if ctx.store is None:
        return []
    from scheduler.backup import list_backups, name_time, read_status

    names = list_backups(ctx.store)
    status = read_status(ctx.store)
    out: list[Firing] = []
    if status is not None and not status.get("ok", False):
        what = status.get("error") or "; ".join(status.get("problems") or [])[:500]
        out.append(
            Firing(
                "backup_failed",
                "backup",
                f"the last backup failed: {what}",
                severity="error",
                details=status,
            )
        )
    if not names:
        out.append(Firing("backup_missing", "backup", "there is no backup", severity="error"))
    else:
        age = ctx.now - name_time(names[-1]).timestamp()
        if age > ctx.settings.alert_backup_stale_s:
            out.append(
                Firing(
                    "backup_stale",
                    "backup",
                    f"the newest backup {names[-1]} is {age / 3600:.1f} h old",
                    severity="error",
                    details={"newest": names[-1], "age_s": round(age)},
                )
            )
    return out


def retrain_scored_worse(ctx: Context) -> list[Firing]:
    """A scheduled retrain whose candidate scored below the production version it met.

    Kept within the margin is the rule working; strictly worse means the new data or
    the recipe made the model worse, which someone should look at.
    """
    from storage.schedules import RunOutcome, Schedule, ScheduleRun

    since = ctx.now - ctx.settings.alert_failed_window_s
    rows = ctx.session.execute(
        select(ScheduleRun, Schedule.name, Schedule.model_name)
        .join(Schedule, Schedule.id == ScheduleRun.schedule_id)
        .where(
            ScheduleRun.outcome == RunOutcome.KEPT.value,
            ScheduleRun.decided_at >= since,
            ScheduleRun.champion_score.is_not(None),
            ScheduleRun.candidate_score < ScheduleRun.champion_score,
        )
    ).all()
    return [
        Firing(
            "retrain_worse",
            f"schedule_run:{run.id}",
            f"scheduled retrain {name} of {model}: candidate v{run.candidate_version} scored "
            f"{run.metric} {run.candidate_score:.4f}, below production "
            f"v{run.champion_version} at {run.champion_score:.4f}; production kept",
            team_id=run.team_id,
            details={
                "schedule_id": run.schedule_id,
                "run_id": run.id,
                "metric": run.metric,
                "candidate_version": run.candidate_version,
                "candidate_score": run.candidate_score,
                "champion_version": run.champion_version,
                "champion_score": run.champion_score,
            },
        )
        for run, name, model in rows
    ]


RULES: dict[str, Rule] = {
    "job_failed": job_failed,
    "job_set_aside": job_set_aside,
    "job_pending": job_pending_too_long,
    "worker_lost": worker_lost,
    "gpus_idle": gpus_idle_while_jobs_wait,
    "queue_deep": queue_too_deep,
    "quota_nearly_spent": team_quota_nearly_spent,
    "backup": backup_problems,
    "retrain_worse": retrain_scored_worse,
}
