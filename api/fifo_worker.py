"""A gunicorn threaded worker that takes a connection from the shared listening socket
only while none of its own requests is being answered: the socket's backlog becomes one
first-in-first-out queue for the whole API.

Why: with gunicorn's threaded worker a process takes whatever connections it can and
keeps each kept-alive client for good. Every process then runs a queue of its own, and
its threads share one GIL: a request that waits on PostgreSQL waits again, up to the
5 ms switch interval, for the GIL on every round trip while its siblings compute. Under
load (bench/load.py: 50 clients, 2 cores) a request spent 12 times its CPU in the app,
and where it landed decided its wait: the p99 latency was 2.5-3 times the mean. One
queue served in order, one request per process at a time, is what gunicorn's sync worker
gives (p99 1.3 times the mean in the same benchmark), but a sync worker is held for
good by each event stream (``GET /v1/jobs/<id>/events``) and by each slow client.

So this worker keeps the threads and gates only the accept: it listens while it has a
thread to spare and no request "working", that is, handed to a thread with its bytes
arrived and not yet answered by the app. What does not compute does not hold the gate:

- an event stream: its app returns a generator at once, and the stream holds a thread;
- a client that connects and sends nothing yet, until its request arrives;
- a large body (a dataset upload), read at the client's pace;
- anything that has held it for a second: a client stalled half-way through its
  headers, say. The worker then takes the next connection, as gunicorn's would.

Connections are not kept alive (``--keep-alive 0``, as docker-compose.yml runs it): a
kept-alive client's next request would skip the queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# Requests a process answers at once. One: its threads share a GIL, so a second one adds
# no CPU, only contention, while another process that is free could take it.
IN_APP = 1
# A body larger than this is read at the client's pace, not the CPU's: no gate.
LARGE_BODY = 1 << 20
# A request that has held the gate this long is waiting, not computing (a client that
# sends its headers or body slowly, a slow query): the worker takes the next connection.
HOLD_MAX_S = 1.0

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _nothing() -> None:
    pass


def _large_body(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        return True
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > LARGE_BODY
    except ValueError:
        return False  # the app answers 400


class FifoWorker(ThreadWorker):
    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if not hasattr(ThreadWorker, "set_accept_enabled"):
            raise RuntimeError(f"{cls.__name__} needs the threaded worker of gunicorn >= 27")
        if cfg.keepalive:
            log.warning(
                "%s with --keep-alive %s: a kept-alive client's next request skips the "
                "shared queue; run it with --keep-alive 0",
                cls.__name__,
                cfg.keepalive,
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections (gunicorn's TConn) holding the gate, and since when (monotonic).
        self._working: dict[Any, float] = {}
        self._working_lock = threading.Lock()
        self._handling = threading.local()

    # gunicorn's run loop listens at the top of each turn while this holds.

    @property
    def worker_connections(self) -> int:
        in_threads = self.nr_conns - len(self.keepalived_conns) - len(self.pending_conns)
        if len(self._live_holds()) < IN_APP and in_threads < self.cfg.threads:
            return self.nr_conns + 1
        return self.nr_conns

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        pass  # gunicorn's cap on held connections; here the threads are the cap

    def accept(self, listener: Any) -> None:
        # The loop chose to listen at the top of its turn, and may have slept since with
        # the socket in its poller: meanwhile a request that arrived late can have taken
        # the gate. Leave the connection to a free worker (the next turn stops listening).
        if self.nr_conns >= self.worker_connections:
            return
        super().accept(listener)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: WsgiApp = self.wsgi  # type: ignore[has-type]

        def gated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            conn = getattr(self._handling, "conn", None)
            if _large_body(environ):
                self._release(conn)
            else:
                self._hold(conn)  # a request that arrived late, after its thread let go
            try:
                return app(environ, start_response)
            finally:
                # The response is built, or a stream's generator is: the next connection
                # can be taken while this one is written.
                self._release(conn)

        self.wsgi = gated

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Wake when the oldest live hold runs out, to listen again then. One that ran out
        # already (a client stalled for minutes) is not waited for again.
        oldest = min(self._live_holds(), default=None)
        if oldest is not None:
            timeout = min(timeout, max(0.01, oldest + HOLD_MAX_S - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def enqueue_req(self, conn: Any) -> None:
        self._hold(conn)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        self._handling.conn = conn
        try:
            # A new connection whose request has not arrived yet lets go of the gate
            # until it does (the thread then waits up to 5 s for it, as gunicorn's does).
            if not (conn.initialized or conn.wait_for_data(0)):
                self._release(conn)
            return super().handle(conn)
        finally:
            self._handling.conn = None
            self._release(conn)  # a request that never reached the app (a bad request line)

    def _live_holds(self) -> list[float]:
        """Since when each hold that still counts was taken (younger than HOLD_MAX_S)."""
        now = time.monotonic()
        with self._working_lock:
            return [since for since in self._working.values() if now - since < HOLD_MAX_S]

    def _hold(self, conn: Any) -> None:
        if conn is not None:
            with self._working_lock:
                self._working[conn] = time.monotonic()

    def _release(self, conn: Any) -> None:
        with self._working_lock:
            if conn is None or conn not in self._working:
                return
            del self._working[conn]
        # The loop may be asleep in its poller, off the listening socket: wake it to
        # listen again (a byte on gunicorn's own pipe to the loop).
        self.method_queue.defer(_nothing)
