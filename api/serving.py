"""Online requests routed to serving workers and their answers relayed (DESIGN §7).

The API loads no model: a route authenticates, resolves what the caller may use (team
isolation first), then asks a serving worker through ``tunepool.serving_protocol``:

- route: among the live workers that answer the kind and are not stopping, one that
  already holds the model (affinity), else the least loaded (queue depth / capacity,
  read from Redis at send time);
- send: added to that worker's stream only while its queue is under its capacity (one
  Lua script, so the check and the add cannot be split by another API process); a full
  worker is skipped, and when every one is full the answer is 503 with Retry-After;
- relay: the reply stream is read in short blocks and the worker's advert checked in
  between, so a worker that dies ends the wait within its heartbeat expiry with a 503,
  never a hang; the next request goes to a live worker.

``relay`` yields the reply's chunks as they come (for streamed chat answers), ``call``
returns a one-shot answer.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from api.errors import ApiError
from tunepool.redis_client import redis_client
from tunepool.serving_protocol import (
    Advert,
    Failure,
    ReplyEntry,
    ReplyType,
    Request,
    abandoned_key,
    advert_key,
    live_workers,
)
from tunepool.settings import Settings

EXTENSION = "tunepool.serving"
# Seconds a client is asked to wait before retrying a 503.
RETRY_AFTER_S = 1
# How long one read of the reply stream blocks before the worker's advert is checked.
CHECK_EVERY_S = 0.5
# How long an abandoned mark outlives the relay: longer than any request waits to start.
ABANDONED_TTL_S = 600

# Add to a worker's stream only while it exists (a worker that vanished left none) and
# holds fewer than its capacity: -1 gone, 0 full, else the new entry's id.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
"""


@dataclass(frozen=True)
class Sent:
    request: Request
    worker: Advert


def _unavailable(code: str, message: str) -> ApiError:
    return ApiError(503, code, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def _from_failure(failure: Failure) -> ApiError:
    extra: dict[str, Any] = {"line": failure.line} if failure.line is not None else {}
    headers = {"Retry-After": str(RETRY_AFTER_S)} if failure.status == 503 else None
    return ApiError(
        failure.status, failure.code, failure.message, failure.field, headers=headers, **extra
    )


class ServingClient:
    def __init__(self, client: redis.Redis, timeout_s: float) -> None:
        self.client, self.timeout_s = client, timeout_s
        self._enqueue = client.register_script(_ENQUEUE)

    def workers(self) -> list[Advert]:
        """The adverts of the serving workers alive now."""
        return live_workers(self.client)

    def call(self, kind: str, body: dict[str, Any], model: str | None = None) -> Any:
        """The answer of a one-shot request (chunks, if any, are skipped)."""
        relay = self.relay(self.send(kind, body, model))
        try:
            for entry in relay:
                if entry.type is ReplyType.END:
                    return entry.data
        finally:
            relay.close()  # deletes the reply stream now, not when collected
        raise AssertionError("a relay ends with an end entry or raises")  # pragma: no cover

    def send(
        self,
        kind: str,
        body: dict[str, Any],
        model: str | None = None,
        timeout_s: float | None = None,
        base: str | None = None,
    ) -> Sent:
        """Queue the request at a worker; ``timeout_s`` (default the client's) bounds the
        whole wait for its reply, a streamed one included. ``base``: what to prefer among
        workers that do not hold ``model`` (a chat adapter's resident base model)."""
        timeout_s = timeout_s if timeout_s is not None else self.timeout_s
        request = Request(kind=kind, body=body, deadline=time.time() + timeout_s)
        try:
            candidates = self._route(kind, model, base)
            fields = [value for pair in request.to_fields().items() for value in pair]
            for worker in candidates:
                added = self._enqueue(keys=[worker.stream], args=[worker.capacity, *fields])
                if added not in (0, -1):
                    return Sent(request, worker)
        except redis.RedisError as exc:
            raise _unavailable("unavailable", f"the serving transport is down: {exc}") from None
        raise _unavailable("busy", "every serving worker's queue is full; retry shortly")

    def relay(self, sent: Sent) -> Generator[ReplyEntry, None, None]:
        """The reply's entries as they come, up to its end; an error reply raises its
        ApiError, and so do a lost worker (503) and a missed deadline (504)."""
        key, last, worker = sent.request.reply, "0-0", sent.worker
        checked = time.monotonic()
        ended = False
        try:
            while True:
                left = sent.request.deadline - time.time()
                if left <= 0:
                    raise ApiError(
                        504, "timeout", f"serving worker {worker.name} did not answer in time"
                    )
                block_ms = max(1, int(min(CHECK_EVERY_S, left) * 1000))
                read: Any = self.client.xread({key: last}, count=64, block=block_ms)
                for _, entries in read or []:
                    for entry_id, fields in entries:
                        last = entry_id
                        entry = ReplyEntry.from_fields(fields)
                        if entry.type is ReplyType.ERROR:
                            ended = True
                            raise _from_failure(entry.data)
                        ended = entry.type is ReplyType.END
                        yield entry
                        if ended:
                            return
                # Twice a second at most, however fast a streamed reply's chunks come.
                if time.monotonic() - checked < CHECK_EVERY_S:
                    continue
                checked = time.monotonic()
                if not self._alive(worker):
                    raise _unavailable(
                        "serving_worker_lost",
                        f"serving worker {worker.name} stopped before it answered; retry",
                    )
        except redis.RedisError as exc:
            raise _unavailable("unavailable", f"the serving transport is down: {exc}") from None
        finally:
            try:
                pipe = self.client.pipeline(transaction=False)
                if not ended:
                    # Nobody reads on (the client disconnected, or the deadline passed):
                    # the worker stops generating when it next writes.
                    pipe.set(abandoned_key(sent.request.id), 1, ex=ABANDONED_TTL_S)
                pipe.delete(key)
                pipe.execute()
            except redis.RedisError:
                pass  # the reply expires on its own

    def _alive(self, worker: Advert) -> bool:
        raw = self.client.get(advert_key(worker.name))
        return raw is not None and Advert.from_json(raw).instance == worker.instance

    def _route(self, kind: str, model: str | None, base: str | None = None) -> list[Advert]:
        workers = [w for w in self.workers() if kind in w.kinds and not w.draining]
        if not workers:
            raise _unavailable(
                "no_serving_worker",
                f"no serving worker that answers {str(kind)!r} requests is running; start one "
                "with `tunepool serve` (docker compose: the inference service)",
            )
        pipe = self.client.pipeline(transaction=False)
        for worker in workers:
            pipe.xlen(worker.stream)
        depths = dict(zip((w.name for w in workers), pipe.execute(), strict=True))

        def order(worker: Advert) -> tuple[bool, bool, float]:
            # Affinity first (a model load costs far more than a queue): the model itself,
            # then its base (an adapter loads in milliseconds, a base in seconds), then load.
            holds = model is not None and worker.holds(model)
            holds_base = base is not None and worker.holds(base)
            return (not holds, not holds_base, depths[worker.name] / max(1, worker.capacity))

        return sorted(workers, key=order)


def serving_client(app: Flask) -> ServingClient:
    """The app's client to the serving workers, made on first use."""
    client: ServingClient | None = app.extensions.get(EXTENSION)
    if client is None:
        settings: Settings = app.extensions["tunepool"].settings
        client = app.extensions.setdefault(
            EXTENSION,
            ServingClient(redis_client(settings.redis_url), settings.serve_timeout_s),
        )
    return client
