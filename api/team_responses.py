"""What the team, key, usage, pool and alert routes answer, as their views build them
(``api.teams``, ``api.pool``, ``api.alerts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from api.responses import Answer, Priority, Record

# -- teams, keys, usage --------------------------------------------------------------


class Quota(Answer):
    max_gpus: int | None
    gpu_hours_budget: float | None
    can_borrow: bool
    max_priority: Priority


class StoredBytes(Answer):
    total: int
    datasets: int
    models: int
    jobs: int


class Usage(Answer):
    period_start: datetime
    gpu_hours: float
    gpu_hours_left: float | None = Field(description="null: no budget")
    gpus_in_use: int
    stored_bytes: StoredBytes


class JobCounts(Answer):
    running: int
    queued: int
    pending: int


class Team(Answer):
    id: str
    name: str
    weight: float
    operator: bool
    quota: Quota
    queue_state: Literal["open", "held", "draining"]
    usage: Usage
    jobs: JobCounts


class Teams(Answer):
    data: list[Team]


class TeamOfCaller(Team):
    role: Literal["admin", "member", "viewer"] = Field(description="the calling key's role")


class NewKey(Answer):
    """``key`` is shown once: a replay (Idempotency-Key) answers null and its prefix."""

    key: str | None
    role: Literal["admin", "member", "viewer"]
    key_prefix: str | None = None
    key_shown_once: str | None = None


class NewTeam(Answer):
    team: Team
    key: str | None = Field(description="the team's first admin key, shown once")
    key_prefix: str | None = None
    key_shown_once: str | None = None


class KeyInfo(Answer):
    id: str
    prefix: str
    role: Literal["admin", "member", "viewer"]
    created_at: datetime
    revoked_at: datetime | None


class Keys(Answer):
    data: list[KeyInfo]


class Revoked(Answer):
    id: str
    revoked: Literal[True]


# -- pool, alerts --------------------------------------------------------------------


class PoolJob(Answer):
    job: str | None = Field(description="null for another team's job")
    team: str | None
    state: str
    slots: int
    gpu_indices: list[int] | None
    borrowed: bool


class PoolWorker(Answer):
    name: str
    hostname: str
    state: str
    slots: int
    free_slots: int
    gpus: list[Record] | None
    heartbeat_age_s: float
    jobs: list[PoolJob]


class Capacity(Answer):
    slots: int
    free_slots: int


class Pool(Answer):
    workers: list[PoolWorker]
    capacity: Capacity
    pending_jobs: int


class Incident(Answer):
    id: int
    rule: str
    subject: str
    team_id: str | None = Field(description="null: pool-wide (admins see these)")
    severity: str
    state: Literal["open", "resolved"]
    summary: str
    details: Record | None
    opened_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    notifications: int


class IncidentPage(Answer):
    data: list[Incident]
    next_cursor: str | None
