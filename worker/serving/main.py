"""The serving worker process (``tunepool serve``): holds models, answers the API's requests.

One long-lived process per inference worker: a shelf of loaded models (LRU bounded by
bytes), a request loop on its own Redis stream, and a heartbeat advertising what it
holds. It needs Redis and the object store, never the SQL database. SIGTERM (or the
``stop`` event) drains it: no new requests are routed here, what waits gets a 503,
what runs finishes (up to ``grace_s``), and its advert is taken down.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
import uuid

import redis

from storage.platform import Platform
from tunepool.serving_protocol import Advert, Kind, request_stream
from tunepool.settings import Settings
from worker.serving.advert import Heartbeat
from worker.serving.chat import ChatHost
from worker.serving.chat_handler import chat_handler
from worker.serving.consumer import RequestConsumer
from worker.serving.handlers import Handler, standard_handlers
from worker.serving.shelf import ModelShelf

log = logging.getLogger(__name__)
# It names Redis keys and a scratch directory.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def default_name() -> str:
    """A serving worker keeps no state across starts, so any unique name will do: replicas
    (`docker compose up --scale inference=N`) differ by host name."""
    return f"{socket.gethostname()}-{os.getpid()}-serve"


def serve_until_signalled(settings: Settings, name: str | None, loglevel: str = "info") -> None:
    """Run until SIGTERM or SIGINT, then drain (the ``tunepool serve`` command)."""
    logging.basicConfig(
        level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_serving_worker(settings, name or default_name(), stop)


def run_serving_worker(
    settings: Settings, name: str, stop: threading.Event, grace_s: float = 30.0
) -> None:
    """Serve predictions and reports until ``stop`` is set."""
    if not NAME.fullmatch(name):
        raise ValueError(f"serving worker name {name!r}: letters, digits, '.', '_' and '-'")
    # Warm up: torch and transformers take seconds to import; do it now, beside the loop,
    # rather than on the first request's path.
    threading.Thread(target=_import_engines, name="warm-up", daemon=True).start()
    store = Platform(settings).store
    shelf = ModelShelf(
        store,
        settings.scratch_dir / "serving" / name,
        max_batch_size=settings.serve_max_batch,
        max_wait_ms=settings.serve_max_wait_ms,
        cache_bytes=settings.serve_cache_bytes,
    )
    chat = ChatHost(store, settings, settings.scratch_dir / "serving" / f"{name}-chat")
    handlers = {**standard_handlers(shelf, store, settings), Kind.CHAT: chat_handler(chat)}
    try:
        serve(settings, name, handlers, stop, shelf, grace_s, chat)
    finally:
        chat.close()
        shelf.close()


def serve(
    settings: Settings,
    name: str,
    handlers: dict[str, Handler],
    stop: threading.Event,
    shelf: ModelShelf | None = None,
    grace_s: float = 30.0,
    chat: ChatHost | None = None,
) -> None:
    """Answer requests of the ``handlers``' kinds until ``stop`` is set, then drain.

    ``shelf`` and ``chat``: the models, bases and adapters held, advertised for routing
    by affinity.
    """
    instance = uuid.uuid4().hex[:12]
    # Reads block for READ_BLOCK_MS (half a second): the socket waits longer than that.
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    stream = request_stream(name, instance)
    consumer = RequestConsumer(
        client,
        stream,
        instance,
        handlers,
        settings.serve_threads,
        # A reply outlives the longest wait of the API, so a slow answer is still read.
        reply_ttl_s=settings.serve_timeout_s + 30,
    )
    started = time.time()
    draining = threading.Event()

    def advert() -> Advert:
        return Advert(
            name=name,
            instance=instance,
            host=socket.gethostname(),
            pid=os.getpid(),
            kinds=sorted(handlers),
            capacity=settings.serve_queue_limit,
            threads=settings.serve_threads,
            queue_depth=consumer.depth(),
            models={**(shelf.held() if shelf else {}), **(chat.held() if chat else {})},
            loading=shelf.loading() if shelf else [],
            cache_bytes=shelf.cache.total_bytes if shelf else 0,
            cache_max_bytes=shelf.cache.max_bytes if shelf else 0,
            started_at=started,
            beat_at=time.time(),
            draining=draining.is_set(),
        )

    heartbeat = Heartbeat(
        client, advert, stream, settings.serve_heartbeat_s, settings.serve_lost_after_s
    )
    consumer.ensure_group()
    heartbeat.beat()
    heartbeat.start()
    log.info("serving worker %s (instance %s) reads %s", name, instance, stream)
    try:
        consumer.run(stop)
    finally:
        draining.set()
        try:
            heartbeat.beat()  # routers stop choosing this worker now
            refused = consumer.refuse_waiting()
            if refused:
                log.info("refused %d waiting request(s) while stopping", refused)
        except redis.RedisError:
            log.warning("could not announce the stop; the advert will expire")
        if not consumer.drain(grace_s):
            log.warning("requests still running after %.0f s; stopping anyway", grace_s)
        heartbeat.retire(name)
        client.close()
        log.info("serving worker %s stopped", name)


def _import_engines() -> None:
    try:
        import worker.inference.model
        import worker.inference.predict  # noqa: F401
    except Exception:
        log.exception("warm-up import failed; the first request will import (and report) it")
