"""Live events and logs: SSE in id order, resumable with Last-Event-ID, ending when the job ends."""

from __future__ import annotations

import json
import logging
import threading
import time

from flask import Flask
from flask.testing import FlaskClient

from storage.db import transaction
from storage.platform import Platform
from storage.states import JobState, record_event, transition
from tests.api.conftest import KeyFactory, upload_ner
from worker.job_logs import JobLogHandler


def parse_sse(text: str) -> list[dict]:
    """Frames as dicts: id, event, data (decoded JSON), or comment."""
    frames = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        frame: dict = {}
        for line in block.split("\n"):
            field, _, rest = line.partition(":")
            rest = rest[1:] if rest.startswith(" ") else rest
            if field == "":
                frame["comment"] = rest
            elif field == "data":
                frame["data"] = json.loads(rest)
            else:
                frame[field] = rest
        frames.append(frame)
    return frames


def new_job(client: FlaskClient, headers: dict[str, str]) -> str:
    ds = upload_ner(client, headers)["id"]
    resp = client.post(
        "/v1/jobs", headers=headers, json={"task": "token-classification", "train_dataset": ds}
    )
    assert resp.status_code == 201
    return str(resp.get_json()["id"])


def progress(platform: Platform, job_id: str, step: int) -> None:
    with transaction(platform.sessions) as session:
        record_event(session, job_id, "progress", data={"step": step, "loss": 1.0 / step})


def test_sse_delivers_events_in_order_and_resumes_from_last_event_id(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    job_id = new_job(client, headers)
    for step in (1, 2, 3):
        progress(platform, job_id, step)
    with transaction(platform.sessions) as session:
        transition(session, job_id, JobState.CANCELLED, reason="done here")

    resp = client.get(f"/v1/jobs/{job_id}/events?follow=1", headers=headers)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    frames = [f for f in parse_sse(resp.get_data(as_text=True)) if "event" in f]
    events = frames[:-1]
    assert [f["event"] for f in events] == ["state", "progress", "progress", "progress", "state"]
    ids = [int(f["id"]) for f in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [f["data"]["id"] for f in events] == ids
    assert [f["data"]["data"].get("step") for f in events[1:4]] == [1, 2, 3]
    assert frames[-1]["event"] == "end" and frames[-1]["data"] == {"state": "cancelled"}

    # A reconnect after the second event gets exactly the rest, in order.
    resumed = client.get(
        f"/v1/jobs/{job_id}/events?follow=1", headers={**headers, "Last-Event-ID": str(ids[1])}
    )
    rest = [f for f in parse_sse(resumed.get_data(as_text=True)) if "id" in f]
    assert [int(f["id"]) for f in rest] == ids[2:]

    # Plain paging (no follow) answers the same history as JSON.
    page = client.get(f"/v1/jobs/{job_id}/events?after={ids[1]}", headers=headers).get_json()
    assert [e["id"] for e in page["data"]] == ids[2:]


def test_a_live_stream_sends_events_as_they_happen_with_heartbeats(
    app: Flask, client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    app.config.update(TUNEPOOL_SSE_POLL_S=0.05, TUNEPOOL_SSE_HEARTBEAT_S=0.2)
    headers = make_key()
    job_id = new_job(client, headers)

    def produce() -> None:
        time.sleep(0.5)  # long enough for a heartbeat first
        for step in (1, 2):
            progress(platform, job_id, step)
            time.sleep(0.1)
        with transaction(platform.sessions) as session:
            transition(session, job_id, JobState.CANCELLED, reason="stop")

    producer = threading.Thread(target=produce)
    producer.start()
    resp = client.get(f"/v1/jobs/{job_id}/events?follow=1", headers=headers, buffered=False)
    received = []
    started = time.monotonic()
    for chunk in resp.response:
        received.append(
            (time.monotonic() - started, chunk.decode() if isinstance(chunk, bytes) else chunk)
        )
        if "event: end" in received[-1][1]:
            break
    producer.join()
    text = "".join(c for _, c in received)
    frames = parse_sse(text)
    assert any(f.get("comment") == "keep-alive" for f in frames)
    kinds = [f.get("event") for f in frames if "event" in f]
    assert kinds == ["state", "progress", "progress", "state", "end"]
    # The progress events arrived while the job ran, not all at the end.
    first_progress = next(t for t, c in received if "event: progress" in c)
    assert first_progress < next(t for t, c in received if "event: end" in c)


def test_another_teams_stream_is_a_404(client: FlaskClient, make_key: KeyFactory) -> None:
    job_id = new_job(client, make_key("alpha"))
    other = make_key("beta")
    assert client.get(f"/v1/jobs/{job_id}/events?follow=1", headers=other).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/logs?follow=1", headers=other).status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/logs", headers=other).status_code == 404


def test_job_logs_are_batched_paged_and_streamed(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    job_id = new_job(client, headers)
    handler = JobLogHandler.attach(platform, job_id)
    try:
        logging.getLogger("worker.runner").info("loading %s", "data")
        logging.getLogger("worker.runner").warning("slow disk")
        logging.getLogger("sqlalchemy.engine").warning("never copied")
    finally:
        handler.close()
    handler = JobLogHandler.attach(platform, job_id)
    try:
        logging.getLogger("worker.runner").info("second batch")
    finally:
        handler.close()

    page = client.get(f"/v1/jobs/{job_id}/logs", headers=headers).get_json()
    lines = [line for batch in page["data"] for line in batch["lines"]]
    assert [(ln["level"], ln["message"]) for ln in lines] == [
        ("info", "loading data"),
        ("warning", "slow disk"),
        ("info", "second batch"),
    ]
    first_batch = page["data"][0]["id"]
    # Log lines stay out of the event history.
    events = client.get(f"/v1/jobs/{job_id}/events", headers=headers).get_json()["data"]
    assert all(e["kind"] != "log" for e in events)

    with transaction(platform.sessions) as session:
        transition(session, job_id, JobState.CANCELLED, reason="stop")
    resp = client.get(
        f"/v1/jobs/{job_id}/logs?follow=1", headers={**headers, "Last-Event-ID": str(first_batch)}
    )
    frames = [f for f in parse_sse(resp.get_data(as_text=True)) if "event" in f]
    assert [f["event"] for f in frames] == ["log", "end"]
    assert [ln["message"] for ln in frames[0]["data"]["lines"]] == ["second batch"]
