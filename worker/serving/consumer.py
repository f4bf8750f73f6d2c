"""A serving worker's request loop: its own Redis stream in, per-request reply streams out.

Requests are read with XREADGROUP, never more than there are free threads, and each
runs on a thread of its own, so concurrent requests for one model meet in its
micro-batcher and share forward passes. An answered request is acknowledged and
deleted: the stream's length is what waits or runs here, the queue depth the API
bounds. A request whose deadline passed is dropped unanswered (nobody waits for it).
Once stopping, the loop reads no more, answers what still waits with a 503 and lets
what runs finish.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis

from tunepool.serving_protocol import (
    GROUP,
    Abandoned,
    Failure,
    Refused,
    ReplyEntry,
    ReplyType,
    Request,
    abandoned_key,
    reply_stream,
)
from worker.serving.handlers import Handler

log = logging.getLogger(__name__)

# How long one read blocks: the longest a stop request waits to be noticed.
READ_BLOCK_MS = 500


class ReplyWriter:
    """Writes one request's reply stream; it expires ``ttl_s`` after the last write.

    Each write also reads the request's abandoned mark (same round trip): a chunk for a
    client that has gone raises ``Abandoned``, so the handler stops generating for nobody.
    """

    def __init__(self, client: redis.Redis, request_id: str, ttl_s: float) -> None:
        self.client, self.key, self.ttl_ms = client, reply_stream(request_id), int(ttl_s * 1000)
        self.abandoned = abandoned_key(request_id)

    def gone(self) -> bool:
        return bool(self.client.exists(self.abandoned))

    def chunk(self, data: Any) -> None:
        self._add(ReplyEntry(ReplyType.CHUNK, data))

    def end(self, data: Any) -> None:
        self._add(ReplyEntry(ReplyType.END, data))

    def error(self, failure: Failure) -> None:
        self._add(ReplyEntry(ReplyType.ERROR, failure))

    def _add(self, entry: ReplyEntry) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.abandoned)
        pipe.xadd(self.key, entry.to_fields())  # type: ignore[arg-type]
        pipe.pexpire(self.key, self.ttl_ms)
        gone = pipe.execute()[0]
        if gone:
            # The relay deleted the reply stream; what this write re-created goes too.
            self.client.delete(self.key)
            raise Abandoned


class RequestConsumer:
    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        consumer: str,
        handlers: dict[str, Handler],
        threads: int,
        reply_ttl_s: float,
    ) -> None:
        self.client, self.stream, self.consumer = client, stream, consumer
        self.handlers, self.threads, self.reply_ttl_s = handlers, threads, reply_ttl_s
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="serve")
        self._busy = 0
        self._idle = threading.Condition()

    def ensure_group(self) -> None:
        """The stream and its group; from the start ("0"), so nothing added before is lost."""
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def depth(self) -> int:
        return int(self.client.xlen(self.stream))

    @property
    def busy(self) -> int:
        with self._idle:
            return self._busy

    def run(self, stop: threading.Event) -> None:
        """Read and start requests until ``stop`` is set."""
        while not stop.is_set():
            free = self.threads - self.busy
            if free <= 0:
                with self._idle:
                    self._idle.wait(READ_BLOCK_MS / 1000)
                continue
            try:
                entries: Any = self.client.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=free, block=READ_BLOCK_MS
                )
            except redis.ResponseError as exc:
                if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                    raise
                # Redis lost the stream (restarted empty, or flushed; a read blocked on it
                # is then UNBLOCKED): make it again.
                log.warning("serving stream %s is gone; creating it again", self.stream)
                self.ensure_group()
                continue
            except redis.ConnectionError as exc:
                log.warning("Redis unreachable (%s); retrying in 1 s", exc)
                stop.wait(1.0)
                continue
            for _, items in entries or []:
                for entry_id, fields in items:
                    self._start(entry_id, fields)

    def refuse_waiting(self) -> int:
        """Answer every request not started yet with a 503; how many there were."""
        refused = 0
        failure = Failure(503, "unavailable", "the serving worker is stopping; retry")
        while True:
            entries: Any = self.client.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=100
            )
            items = [item for _, batch in entries or [] for item in batch]
            if not items:
                return refused
            for entry_id, fields in items:
                try:
                    request_id = Request.from_fields(fields).id
                    ReplyWriter(self.client, request_id, self.reply_ttl_s).error(failure)
                except Exception:
                    log.exception("could not refuse request %s", entry_id)
                self._done(entry_id)
                refused += 1

    def drain(self, grace_s: float) -> bool:
        """Wait up to ``grace_s`` for running requests to finish; whether they all did."""
        deadline = time.monotonic() + grace_s
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
            finished = self._busy == 0
        self._pool.shutdown(wait=finished, cancel_futures=True)
        return finished

    def _start(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        with self._idle:
            self._busy += 1
        self._pool.submit(self._answer, entry_id, fields)

    def _answer(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        try:
            request = Request.from_fields(fields)
        except Exception:
            log.exception("dropping malformed serving request %s", entry_id)
            self._finish(entry_id)
            return
        try:
            if time.time() > request.deadline:
                log.info("dropping request %s: its client stopped waiting", request.id)
                return
            reply = ReplyWriter(self.client, request.id, self.reply_ttl_s)
            if reply.gone():
                log.info("dropping request %s: its client went away", request.id)
                return
            handler = self.handlers.get(request.kind)
            try:
                if handler is None:
                    raise Refused(
                        Failure(400, "unknown_kind", f"this worker cannot answer {request.kind!r}")
                    )
                reply.end(handler(request.body, reply))
            except Abandoned:
                log.info("stopped request %s: its client went away", request.id)
            except Refused as exc:
                reply.error(exc.failure)
            except Exception as exc:
                log.exception("%s request %s failed", request.kind, request.id)
                reply.error(Failure(500, "serving_failed", f"{type(exc).__name__}: {exc}"))
        except Abandoned:  # the client left while its error was being written
            log.info("stopped request %s: its client went away", request.id)
        except Exception:
            log.exception("could not answer request %s", request.id)
        finally:
            self._finish(entry_id)

    def _finish(self, entry_id: bytes) -> None:
        self._done(entry_id)
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def _done(self, entry_id: bytes) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.execute()
        except redis.RedisError:
            log.exception("could not remove answered request %s from %s", entry_id, self.stream)
