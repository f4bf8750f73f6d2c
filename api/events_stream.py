"""Live job events and log lines as Server-Sent Events, and log lines by page.

``GET /v1/jobs/<id>/events?follow=1`` and ``GET /v1/jobs/<id>/logs?follow=1`` stream
``text/event-stream``: each SSE ``id`` is the JobEvent id, so a client that reconnects
with ``Last-Event-ID`` (browsers' EventSource does this by itself) resumes exactly
after the last event it saw. Comment lines keep idle connections open through
proxies; the stream ends with an ``end`` event once the job is terminal and every
event has been sent.

The stream polls SQL (the record) rather than Redis pub/sub: a reconnecting client
needs the history anyway, and a poll every half second per open stream is cheap.
Each stream lasts at most ``MAX_STREAM_S``; the client reconnects and resumes, so a
gunicorn thread is never held forever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from api import responses
from api.context import db, platform
from api.jobs import event_json, owned_job
from api.openapi import documented
from api.paging import MAX_ROW_ID, FollowQuery, page_params, query_int
from api.times import with_moment
from storage.models import Job, JobEvent
from storage.platform import Platform
from storage.states import TERMINAL

bp = Blueprint("events_stream", __name__, url_prefix="/v1/jobs")

LOG_KIND = "log"
POLL_S = 0.5
HEARTBEAT_S = 15.0
MAX_STREAM_S = 300.0
TERMINAL_STATES = frozenset(s.value for s in TERMINAL)


def resume_point() -> int:
    """Where to start: the Last-Event-ID header wins over ``?after=`` (a reconnect knows best)."""
    header = request.headers.get("Last-Event-ID")
    if header:
        return query_int("Last-Event-ID", 0, 0, MAX_ROW_ID, raw=header.strip())
    return query_int("after", 0, 0, MAX_ROW_ID)


def _rows(session: Any, job_id: str, after: int, logs: bool, limit: int) -> list[JobEvent]:
    kind = JobEvent.kind == LOG_KIND if logs else JobEvent.kind != LOG_KIND
    query = (
        select(JobEvent)
        .where(JobEvent.job_id == job_id, JobEvent.id > after, kind)
        .order_by(JobEvent.id)
        .limit(limit)
    )
    return list(session.scalars(query).all())


def _frame(event_id: int, kind: str, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def sse(job_id: str, after: int, logs: bool) -> Response:
    """The streaming response; opens its own sessions, since it outlives the request's."""
    owned_job(job_id)
    config = current_app.config
    stream = _follow(
        platform(),
        job_id,
        after,
        logs,
        poll_s=float(config.get("TUNEPOOL_SSE_POLL_S", POLL_S)),
        heartbeat_s=float(config.get("TUNEPOOL_SSE_HEARTBEAT_S", HEARTBEAT_S)),
        max_s=float(config.get("TUNEPOOL_SSE_MAX_S", MAX_STREAM_S)),
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream, mimetype="text/event-stream", headers=headers)


def _follow(
    platform: Platform,
    job_id: str,
    after: int,
    logs: bool,
    *,
    poll_s: float,
    heartbeat_s: float,
    max_s: float,
) -> Iterator[str]:
    yield f"retry: {int(poll_s * 4000)}\n\n"
    started = last_sent = time.monotonic()
    while True:
        with platform.sessions() as session:
            # The state is read before the events: a terminal state seen here means
            # its own event is already committed and is among the rows read next.
            state = session.scalar(select(Job.state).where(Job.id == job_id))
            rows = _rows(session, job_id, after, logs, limit=500)
            frames = [_frame(e.id, e.kind, _log_json(e) if logs else event_json(e)) for e in rows]
        for row, frame in zip(rows, frames, strict=True):
            after = row.id
            yield frame
        now = time.monotonic()
        if frames:
            last_sent = now
            continue  # more may be waiting beyond this page
        if state is None or state in TERMINAL_STATES:
            yield f"event: end\ndata: {json.dumps({'state': state})}\n\n"
            return
        if now - started >= max_s:
            return  # the client reconnects with Last-Event-ID and resumes
        if now - last_sent >= heartbeat_s:
            last_sent = now
            yield ": keep-alive\n\n"
        time.sleep(poll_s)


def _log_json(e: JobEvent) -> dict[str, Any]:
    return {"id": e.id, "lines": [with_moment(line) for line in (e.data or {}).get("lines", [])]}


@bp.get("/<job_id>/logs")
@documented(
    {200: responses.LogPage},
    (404, 422),
    tag="jobs",
    query=FollowQuery,
    media={200: ["text/event-stream"]},
)
def logs(job_id: str) -> Response:
    """Log lines in batches as the runner wrote them; ``?follow=1`` streams them."""
    after = resume_point()
    if request.args.get("follow") in ("1", "true"):
        return sse(job_id, after, logs=True)
    owned_job(job_id)
    limit, _ = page_params(default=200, maximum=1000)
    rows = _rows(db(), job_id, after, logs=True, limit=limit)
    batches = [_log_json(e) for e in rows]
    return jsonify({"data": batches, "next_after": batches[-1]["id"] if batches else after})
