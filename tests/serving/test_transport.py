"""The transport end to end in one process: the serving worker's loop (worker.serving.main
``serve``, its consumer and heartbeat) on real Redis, with small handlers of our own, and
the API's client relaying. What streamed chat answers need (chunks, then the answer) is
here too; model handlers are tested through the API against a real ``tunepool serve``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from api.errors import ApiError
from api.serving import ServingClient
from tunepool.serving_protocol import Failure, Refused, ReplyType, Request
from tunepool.settings import Settings
from worker.serving.handlers import Handler, Reply
from worker.serving.main import serve

Start = Callable[..., threading.Event]


@pytest.fixture
def start_worker(transport_url: str, tmp_path: Path) -> Iterator[Start]:
    """Start ``serve`` on a thread with the given handlers; stopped (and drained) after."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(handlers: dict[str, Handler], name: str = "w1", **settings: Any) -> threading.Event:
        config = Settings(
            home=tmp_path,
            redis_url=transport_url,
            serve_heartbeat_s=0.2,
            serve_lost_after_s=1.0,
            **settings,
        )
        stop = threading.Event()
        thread = threading.Thread(target=serve, args=(config, name, handlers, stop), daemon=True)
        thread.start()
        running.append((stop, thread))
        client = redis.Redis.from_url(transport_url)
        deadline = time.monotonic() + 10
        while not ServingClient(client, 1).workers() and time.monotonic() < deadline:
            time.sleep(0.02)
        return stop

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(15)


@pytest.fixture
def api(transport_url: str) -> ServingClient:
    return ServingClient(redis.Redis.from_url(transport_url), timeout_s=10)


def test_a_reply_streams_its_chunks_then_its_answer(
    start_worker: Start, api: ServingClient
) -> None:
    def count(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        for i in range(body["n"]):
            reply.chunk({"token": i})
        return {"done": body["n"]}

    start_worker({"count": count})
    entries = list(api.relay(api.send("count", {"n": 3})))
    assert [(e.type, e.data) for e in entries] == [
        (ReplyType.CHUNK, {"token": 0}),
        (ReplyType.CHUNK, {"token": 1}),
        (ReplyType.CHUNK, {"token": 2}),
        (ReplyType.END, {"done": 3}),
    ]
    assert api.call("count", {"n": 2}) == {"done": 2}


def test_refusals_and_failures_come_back_as_the_api_errors_they_name(
    start_worker: Start, api: ServingClient
) -> None:
    def refuse(body: dict[str, Any], _reply: Reply) -> None:
        raise Refused(Failure(422, "invalid_data", "line 3: bad tag", "train_dataset", 3))

    def crash(body: dict[str, Any], _reply: Reply) -> None:
        raise RuntimeError("out of memory")

    start_worker({"refuse": refuse, "crash": crash})
    with pytest.raises(ApiError) as refused:
        api.call("refuse", {})
    error = refused.value
    assert (error.status, error.code, error.field, error.extra) == (
        422,
        "invalid_data",
        "train_dataset",
        {"line": 3},
    )
    with pytest.raises(ApiError) as crashed:
        api.call("crash", {})
    assert (crashed.value.status, crashed.value.code) == (500, "serving_failed")
    assert "out of memory" in crashed.value.message


def test_requests_run_at_once_and_the_queue_empties_as_they_are_answered(
    start_worker: Start, api: ServingClient, transport_url: str
) -> None:
    together = threading.Barrier(4, timeout=10)

    def meet(body: dict[str, Any], _reply: Reply) -> int:
        together.wait()  # passes only if four requests run at the same time
        return int(body["i"])

    start_worker({"meet": meet}, serve_threads=4)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: api.call("meet", {"i": i}), range(4)))
    assert answers == [0, 1, 2, 3]
    (worker,) = api.workers()
    assert redis.Redis.from_url(transport_url).xlen(worker.stream) == 0


def test_a_request_nobody_waits_for_any_more_is_dropped_unanswered(
    start_worker: Start, transport_url: str
) -> None:
    calls: list[int] = []

    def slow(body: dict[str, Any], _reply: Reply) -> int:
        calls.append(body["i"])
        time.sleep(1.0)
        return int(body["i"])

    start_worker({"slow": slow}, serve_threads=1)
    impatient = ServingClient(redis.Redis.from_url(transport_url), timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ApiError) as waited:
        impatient.call("slow", {"i": 1})  # runs 1 s; the API waits 0.3 s
    assert waited.value.status == 504 and time.monotonic() - started < 2
    with pytest.raises(ApiError):
        impatient.call("slow", {"i": 2})  # queued behind it: its deadline passes first
    time.sleep(1.2)
    assert calls == [1]  # the second was dropped when its turn came, never run


def test_the_worker_outlives_a_flushed_redis(
    start_worker: Start, api: ServingClient, transport_url: str
) -> None:
    start_worker({"echo": lambda body, _reply: body})
    assert api.call("echo", {"a": 1}) == {"a": 1}
    redis.Redis.from_url(transport_url).flushdb()  # as a Redis restarted without its data
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            assert api.call("echo", {"a": 2}) == {"a": 2}
            break
        except ApiError as exc:
            assert exc.status == 503, exc.message  # until it advertised itself again
            time.sleep(0.1)
    else:
        pytest.fail("the worker did not come back after the flush")


def test_stopping_answers_what_waits_with_503_and_finishes_what_runs(
    start_worker: Start, api: ServingClient
) -> None:
    release = threading.Event()

    def hold(body: dict[str, Any], _reply: Reply) -> str:
        release.wait(10)
        return "finished"

    stop = start_worker({"hold": hold}, serve_threads=1)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(api.call, "hold", {})
        time.sleep(0.3)
        waiting = pool.submit(api.call, "hold", {})
        time.sleep(0.3)
        stop.set()
        with pytest.raises(ApiError) as refused:
            waiting.result(10)
        assert (refused.value.status, refused.value.code) == (503, "unavailable")
        assert "stopping" in refused.value.message
        release.set()
        assert running.result(10) == "finished"
    deadline = time.monotonic() + 5
    while api.workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.workers() == []  # its advert is taken down once drained


def test_a_malformed_entry_is_dropped_and_the_worker_goes_on(
    start_worker: Start, api: ServingClient, transport_url: str
) -> None:
    start_worker({"echo": lambda body, _reply: body})
    (worker,) = api.workers()
    client = redis.Redis.from_url(transport_url)
    client.xadd(worker.stream, {"kind": "echo"})  # no body, no id
    client.xadd(worker.stream, Request("echo", {}, time.time() + 5).to_fields())  # type: ignore[arg-type]
    assert api.call("echo", {"ok": True}) == {"ok": True}
    with pytest.raises(ApiError) as unknown:
        api.call("translate", {})
    assert unknown.value.code == "no_serving_worker"
