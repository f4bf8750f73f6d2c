"""SQLAlchemy 2 typed models. SQL is the record; Redis only carries messages.

Times are stored as float seconds since the epoch (UTC): exact, portable between
SQLite and PostgreSQL, and cheap to compare in conditional updates (leases).
"""

from __future__ import annotations

import time
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.dataset_status import DatasetStatus
from storage.ids import new_id
from storage.worker_state import WorkerState


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A mapped class's table, for plain statements on rows nobody holds as objects
    (declarative types ``__table__`` as any FROM clause; ours are all tables)."""
    return cast(Table, model.__table__)


def _now() -> float:
    return time.time()


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("team"))
    name: Mapped[str] = mapped_column(String(64), unique=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    max_gpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpu_hours_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    can_borrow: Mapped[bool] = mapped_column(Boolean, default=True)
    # The operators' team: its admins manage every team's quotas and keys.
    operator: Mapped[bool] = mapped_column(Boolean, default=False)
    # open: admitted as usual; held: nothing is admitted; draining: no new submissions.
    queue_state: Mapped[str] = mapped_column(String(16), default="open")
    # The highest priority class the team's members may ask for.
    max_priority: Mapped[str] = mapped_column(String(16), default="high")
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class ApiKey(Base):
    """A team's key. Only a SHA-256 of the secret is kept (keys are 256-bit random)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="member")
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class StoredObject(Base):
    """Every object in the store, with the size and SHA-256 that downloads verify."""

    __tablename__ = "stored_objects"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ds"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(32))
    format: Mapped[str] = mapped_column(String(16))
    object_key: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # validating (format checked at upload; a worker adds the word-piece statistics),
    # ready, or failed with ``status_details`` ({"message", "line"}); storage.dataset_status.
    status: Mapped[str] = mapped_column(String(16), default=DatasetStatus.VALIDATING.value)
    status_details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class Worker(Base):
    """A worker process and the slots (GPUs, or CPU slots standing in) it offers."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(160))
    slots: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default=WorkerState.ALIVE.value)
    registered_at: Mapped[float] = mapped_column(Float, default=_now)
    heartbeat_at: Mapped[float] = mapped_column(Float, default=_now)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_priority", "state", "priority"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    slots: Mapped[int] = mapped_column(Integer, default=1)
    # No index of its own: ix_jobs_state_priority leads with it and serves every lookup by
    # state, and a second index cost a write on every submit and every state change.
    state: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_name: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    # The worker's GPU indices the job was placed on (CUDA_VISIBLE_DEVICES of its process).
    gpu_indices: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Runs on idle GPUs beyond its team's quota: the first to be preempted.
    borrowed: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(160), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
    queued_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class JobEvent(Base):
    """Append-only history of a job: state changes, progress, checkpoints, leases."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float, default=_now)
    kind: Mapped[str] = mapped_column(String(16))
    old_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    new_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class JobRun(Base):
    """One attempt: who held the lease, from when to when, and from which step it began."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker_name: Mapped[str] = mapped_column(String(128))
    lease_owner: Mapped[str] = mapped_column(String(160))
    started_at: Mapped[float] = mapped_column(Float, default=_now)
    # While the run lives this tracks its lease; a crashed run's end is its last lease_until.
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lease_until: Mapped[float] = mapped_column(Float)
    start_step: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Slots held by this run (the usage ledger for fair share and GPU-hour budgets).
    slots: Mapped[int] = mapped_column(Integer, default=1)
    # The job's own process, so a cancel can escalate to SIGTERM/SIGKILL on its host.
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float] = mapped_column(Float)
    prefix: Mapped[str] = mapped_column(String(512))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=_now)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("team_id", "name", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mv"))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    task: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(512))
    # The base it was trained from: an allow-listed name, or a model of the team.
    base_model: Mapped[str] = mapped_column(String(512))
    # The team's version that base was, when it was one (its id; None for allow-listed).
    base_version_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # "model": the files load on their own; "adapter": a PEFT adapter (safetensors and
    # adapter_config.json) that loads over its base model.
    artifact: Mapped[str] = mapped_column(String(16), default="model", server_default="model")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=_now)
