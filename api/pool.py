"""/v1/pool: workers, their GPUs, what runs where, and free capacity.

Other teams' jobs show as their team and size only: the pool is shared, the jobs are not.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select

from api.context import db, team_id
from api.openapi import documented
from api.team_responses import Pool
from storage.models import Job, Team, Worker
from storage.states import HOLDING_SLOTS
from storage.worker_state import WorkerState

bp = Blueprint("pool", __name__, url_prefix="/v1/pool")


@bp.get("")
@documented({200: Pool}, tag="pool")
def show() -> Response:
    """Workers, their GPUs, what runs where (others' jobs by team only), free slots."""
    session = db()
    names = dict(session.execute(select(Team.id, Team.name)).all())
    holding = session.scalars(
        select(Job).where(Job.state.in_([s.value for s in HOLDING_SLOTS]))
    ).all()
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for job in holding:
        own = job.team_id == team_id()
        by_worker.setdefault(job.worker_name or "", []).append(
            {
                "job": job.id if own else None,
                "team": names.get(job.team_id),
                "state": job.state,
                "slots": job.slots,
                "gpu_indices": job.gpu_indices,
                "borrowed": job.borrowed,
            }
        )
    now = time.time()
    workers = []
    total = free = 0
    for w in session.scalars(select(Worker).order_by(Worker.name)):
        jobs = by_worker.get(w.name, [])
        used = sum(j["slots"] for j in jobs)
        alive = w.state == WorkerState.ALIVE
        total += w.slots if alive else 0
        free += max(0, w.slots - used) if alive else 0
        workers.append(
            {
                "name": w.name,
                "hostname": w.hostname,
                "state": w.state,
                "slots": w.slots,
                "free_slots": max(0, w.slots - used) if alive else 0,
                "gpus": w.gpus,
                "heartbeat_age_s": round(now - w.heartbeat_at, 1),
                "jobs": jobs,
            }
        )
    pending = len(session.scalars(select(Job.id).where(Job.state == "pending")).all())
    return jsonify(
        {
            "workers": workers,
            "capacity": {"slots": total, "free_slots": free},
            "pending_jobs": pending,
        }
    )
