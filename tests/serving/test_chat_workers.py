"""Chat requests over two real serving workers (``tunepool serve`` subprocesses) holding a
tiny Llama: affinity to the worker that holds the base, and a worker killed mid-stream
ending the relay with an error within its heartbeat expiry, the next request served by
the other."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis

from api.errors import ApiError
from api.serving import ServingClient
from tests.conftest import TINY_CHAT_BASE
from tests.serving_process import ServingProcess, serving_env
from tunepool.serving_protocol import Kind, ReplyEntry, ReplyType, base_key

BASE = base_key(TINY_CHAT_BASE)


def body(max_tokens: int) -> dict[str, object]:
    return {
        "base": TINY_CHAT_BASE,
        "adapter": None,
        "prompt": "Once upon a time",
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": [],
        "seed": None,
    }


def test_affinity_then_a_worker_killed_mid_stream_ends_the_relay(
    transport_url: str, tmp_path: Path, tiny_base_models: dict[str, str]
) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    workers = [
        ServingProcess(
            name,
            serving_env(tmp_path / name, transport_url, objects, tiny_base_models),
            tmp_path / f"{name}.log",
        ).launch()
        for name in ("chat-one", "chat-two")
    ]
    try:
        for worker in workers:
            worker.wait_ready(60)
        router = ServingClient(redis.Redis.from_url(transport_url), timeout_s=60)
        first = router.send(Kind.CHAT, body(2), model=BASE, base=BASE)
        (end,) = [e for e in router.relay(first) if e.type is ReplyType.END]
        assert end.data["usage"]["completion_tokens"] == 2
        holder = next(w for w in workers if w.name == first.worker.name)
        other = next(w for w in workers if w is not holder)
        deadline = time.monotonic() + 10
        while BASE not in (holder.advert() or pytest.fail("no advert")).models:
            assert time.monotonic() < deadline, holder.output()
            time.sleep(0.1)
        for _ in range(3):  # both idle: the one holding the base wins
            sent = router.send(Kind.CHAT, body(1), model=BASE, base=BASE)
            assert sent.worker.name == holder.name
            list(router.relay(sent))

        long = router.send(Kind.CHAT, body(1000), model=BASE, base=BASE)
        relay = router.relay(long)
        assert next(relay).type is ReplyType.CHUNK
        holder.signal(signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(ApiError) as lost:
            for _ in relay:
                pass
        assert lost.value.status == 503 and lost.value.code == "serving_worker_lost"
        lost_after = float(holder.env["TUNEPOOL_SERVE_LOST_AFTER_S"])
        assert time.monotonic() - killed < lost_after + 2

        after = router.send(Kind.CHAT, body(2), model=BASE, base=BASE)
        assert after.worker.name == other.name
        assert [e for e in router.relay(after) if e.type is ReplyType.END]
    finally:
        for worker in workers:
            worker.stop()


def test_a_client_that_stops_reading_stops_the_generation(
    transport_url: str, tmp_path: Path, tiny_base_models: dict[str, str]
) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    worker = ServingProcess(
        "chat-gone",
        serving_env(tmp_path / "chat-gone", transport_url, objects, tiny_base_models),
        tmp_path / "chat-gone.log",
    ).launch()
    try:
        worker.wait_ready(60)
        client = redis.Redis.from_url(transport_url)
        router = ServingClient(client, timeout_s=60)
        # Near the tiny model's whole context: far longer than the checks below take.
        sent = router.send(Kind.CHAT, body(1000), model=BASE, base=BASE)
        relay = router.relay(sent)
        assert next(relay).type is ReplyType.CHUNK
        relay.close()  # what the WSGI server does when the client disconnects

        deadline = time.monotonic() + 10
        while client.xlen(sent.worker.stream) > 0:  # the request left the worker's queue
            assert time.monotonic() < deadline, worker.output()
            time.sleep(0.05)
        time.sleep(0.5)
        left = [ReplyEntry.from_fields(f).type for _, f in client.xrange(sent.request.reply)]
        assert not left, f"the worker went on writing for a client that had gone: {left}"
        assert "its client went away" in worker.output()
    finally:
        worker.stop()
