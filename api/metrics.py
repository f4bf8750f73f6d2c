"""GET /metrics: Prometheus text format, computed at scrape time.

SQL is the record, so job counts, waits, training progress and worker liveness are
read from it on each scrape rather than kept in process-local counters (which
gunicorn's several workers would each hold a different part of). What only lives in
memory somewhere else (admission pass timings, GPU readings) comes from Redis via
``tunepool.observations``.

Like Flower's /metrics this is for the operators' network, outside /v1 and without a
team key. Labels are per team at most, never per job: a job id is an unbounded label
value (one series per job ever run) and tells anyone who can scrape what every team
runs. An operator who cannot fence the network sets ``TUNEPOOL_METRICS_TOKEN``; the
scrape must then send ``Authorization: Bearer <token>`` (Prometheus'
``authorization.credentials``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from api.chat_metrics import ChatCollector
from api.context import platform
from api.errors import ApiError
from api.openapi import documented
from storage.models import Job, Team, Worker
from storage.platform import Platform
from storage.states import HOLDING_SLOTS, LEASED, JobState
from storage.stored_bytes import KINDS, stored_bytes_by_team
from storage.worker_state import WorkerState
from tunepool.observations import admission_pass_histogram, gpu_samples

bp = Blueprint("metrics", __name__)

# Submit -> first start, in seconds: from an idle pool (seconds) to a busy day (hours).
WAIT_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class PlatformCollector(Collector):
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def collect(self) -> Iterator[Metric]:
        with self.platform.sessions() as session:
            teams = dict(session.execute(select(Team.id, Team.name)).all())
            yield _jobs_by_state(session, teams)
            yield _submit_to_start(session, teams)
            yield from _training(session, teams)
            yield from _workers(session)
            yield _stored_bytes(session, teams)
        admission = admission_pass_histogram(self.platform.settings.redis_url)
        if admission is not None:
            family = HistogramMetricFamily(
                "tunepool_admission_pass_duration_seconds",
                "Wall time of one admission pass (plan, commit, publish), from every process",
            )
            buckets, total = admission
            family.add_metric([], buckets, total)
            yield family
        yield from _gpus(gpu_samples(self.platform.settings.redis_url))


def _jobs_by_state(session: Session, teams: dict[str, str]) -> Metric:
    family = GaugeMetricFamily(
        "tunepool_jobs",
        "Jobs by team and state (every state, zero included)",
        labels=["team", "state"],
    )
    counts = {
        (team, state): n
        for team, state, n in session.execute(
            select(Job.team_id, Job.state, func.count()).group_by(Job.team_id, Job.state)
        ).all()
    }
    # Zeros too, so a state that empties reads 0 instead of vanishing from the graph.
    for team_id, name in sorted(teams.items(), key=lambda t: t[1]):
        for state in JobState:
            family.add_metric([name, state.value], counts.get((team_id, state.value), 0))
    return family


def _submit_to_start(session: Session, teams: dict[str, str]) -> Metric:
    family = HistogramMetricFamily(
        "tunepool_job_submit_to_start_seconds",
        "Time from a job's submission to the first start of its run",
        labels=["team"],
    )
    wait = Job.started_at - Job.created_at
    columns = [func.sum(case((wait <= b, 1), else_=0)) for b in WAIT_BUCKETS]
    rows = session.execute(
        select(Job.team_id, func.count(), func.coalesce(func.sum(wait), 0.0), *columns)
        .where(Job.started_at.is_not(None))
        .group_by(Job.team_id)
    ).all()
    for team_id, count, total, *within in rows:
        buckets = [(_le(b), float(n or 0)) for b, n in zip(WAIT_BUCKETS, within, strict=True)]
        buckets.append(("+Inf", float(count)))
        family.add_metric([teams.get(team_id, team_id)], buckets, float(total))
    return family


def _training(session: Session, teams: dict[str, str]) -> Iterator[Metric]:
    """Per team, summed over its running jobs' latest progress reports (a job's own loss
    and step are on /v1/jobs/<id>, behind the team's key)."""
    tokens = GaugeMetricFamily(
        "tunepool_team_training_tokens_per_second",
        "Training throughput of the team's running jobs at their latest progress reports",
        labels=["team"],
    )
    reporting = GaugeMetricFamily(
        "tunepool_team_training_jobs_reporting",
        "Running jobs of the team that have reported training progress",
        labels=["team"],
    )
    running = session.execute(
        select(Job.team_id, Job.progress).where(Job.state.in_([s.value for s in LEASED]))
    ).all()
    throughput: dict[str, float] = {}
    counted: dict[str, int] = {}
    for team_id, progress in running:
        value = (progress or {}).get("tokens_per_s")
        if isinstance(value, int | float):
            throughput[team_id] = throughput.get(team_id, 0.0) + float(value)
            counted[team_id] = counted.get(team_id, 0) + 1
    for team_id in sorted(counted, key=lambda t: teams.get(t, t)):
        tokens.add_metric([teams.get(team_id, team_id)], throughput[team_id])
        reporting.add_metric([teams.get(team_id, team_id)], counted[team_id])
    yield from (tokens, reporting)


def _stored_bytes(session: Session, teams: dict[str, str]) -> Metric:
    family = GaugeMetricFamily(
        "tunepool_team_stored_bytes",
        "Object-store bytes a team holds, by kind (datasets, models, jobs)",
        labels=["team", "kind"],
    )
    for team_id, kinds in sorted(
        stored_bytes_by_team(session, teams).items(), key=lambda t: teams[t[0]]
    ):
        for kind in KINDS:
            family.add_metric([teams[team_id], kind], kinds[kind])
    return family


def _workers(session: Session) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "tunepool_worker_up", "1 if the worker is registered alive, else 0", labels=["worker"]
    )
    seen = GaugeMetricFamily(
        "tunepool_worker_last_heartbeat_timestamp_seconds",
        "Unix time of the worker's latest heartbeat",
        labels=["worker"],
    )
    slots = GaugeMetricFamily(
        "tunepool_worker_slots", "Slots (GPUs) a worker offers", labels=["worker"]
    )
    used = GaugeMetricFamily(
        "tunepool_worker_slots_used", "Slots held by jobs placed on the worker", labels=["worker"]
    )
    held = dict(
        session.execute(
            select(Job.worker_name, func.sum(Job.slots))
            .where(Job.state.in_([s.value for s in HOLDING_SLOTS]))
            .group_by(Job.worker_name)
        ).all()
    )
    for w in session.scalars(select(Worker).order_by(Worker.name)):
        up.add_metric([w.name], 1.0 if w.state == WorkerState.ALIVE else 0.0)
        seen.add_metric([w.name], w.heartbeat_at)
        slots.add_metric([w.name], w.slots)
        used.add_metric([w.name], float(held.get(w.name) or 0))
    yield from (up, seen, slots, used)


def _gpus(samples: dict[str, list[dict[str, object]]]) -> Iterator[Metric]:
    labels = ["worker", "gpu", "model"]
    util = GaugeMetricFamily(
        "tunepool_gpu_utilization_ratio",
        "GPU busy fraction over NVML's last sample period",
        labels=labels,
    )
    used = GaugeMetricFamily("tunepool_gpu_memory_used_bytes", "GPU memory in use", labels=labels)
    total = GaugeMetricFamily(
        "tunepool_gpu_memory_total_bytes", "GPU memory installed", labels=labels
    )
    for worker, gpus in sorted(samples.items()):
        for g in gpus:
            key = [worker, str(g.get("index")), str(g.get("name", ""))]
            util.add_metric(key, float(g.get("utilization", 0.0)))  # type: ignore[arg-type]
            used.add_metric(key, float(g.get("memory_used_bytes", 0)))  # type: ignore[arg-type]
            total.add_metric(key, float(g.get("memory_total_bytes", 0)))  # type: ignore[arg-type]
    yield from (util, used, total)


def _le(bound: float) -> str:
    return str(float(bound))


@bp.get("/metrics")
@documented(
    {200: "Prometheus' text format"},
    (401,),
    tag="platform",
    media={200: ["text/plain"]},
    public=True,
)
def metrics() -> Response:
    """The pool's metrics for Prometheus: jobs, waits, training, workers, GPUs, storage.

    For the operators' network; with TUNEPOOL_METRICS_TOKEN set, scrapes send it as
    ``Authorization: Bearer <token>``.
    """
    _require_token(platform().settings.metrics_token)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(platform()))
    registry.register(ChatCollector(platform()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _require_token(token: str) -> None:
    """Empty: open, for a network only operators reach. Else the bearer token, compared in
    constant time so that response timing does not reveal how much of a guess was right."""
    if not token:
        return
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip(), token):
        raise ApiError(
            401,
            "unauthenticated",
            "/metrics needs 'Authorization: Bearer <token>' (TUNEPOOL_METRICS_TOKEN)",
        )
