"""A serving worker's heartbeat: its advert in Redis, which the API routes by.

Each beat writes the advert (what the worker holds, its queue depth and capacity) with
an expiry of ``lost_after_s``, and the worker's name into the registry with the beat's
time. A worker that dies stops beating: its advert expires and the API, which checks it
while waiting, ends the wait with an error instead of hanging. The request stream is
given a (longer) expiry too, so the stream of a worker that died goes away by itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from tunepool.serving_protocol import WORKERS, Advert, advert_key

log = logging.getLogger(__name__)

# Registry entries this much older than the expiry are pruned by the beats of the living.
PRUNE_AFTER_FACTOR = 10


class Heartbeat:
    def __init__(
        self,
        client: redis.Redis,
        advert: Callable[[], Advert],
        stream: str,
        interval_s: float,
        lost_after_s: float,
    ) -> None:
        self.client, self.advert, self.stream = client, advert, stream
        self.interval_s, self.lost_after_s = interval_s, lost_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> Advert:
        advert = self.advert()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(advert_key(advert.name), advert.to_json(), px=int(self.lost_after_s * 1000))
        pipe.zadd(WORKERS, {advert.name: advert.beat_at})
        pipe.zremrangebyscore(
            WORKERS, "-inf", advert.beat_at - PRUNE_AFTER_FACTOR * self.lost_after_s
        )
        pipe.pexpire(self.stream, int(PRUNE_AFTER_FACTOR * self.lost_after_s * 1000))
        pipe.execute()
        return advert

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="serving-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except Exception:
                log.exception("serving heartbeat failed; will retry")

    def retire(self, name: str) -> None:
        """Stop beating and take the advert down: routers forget this worker at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(advert_key(name))
            pipe.zrem(WORKERS, name)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not retire serving worker %s; its advert will expire", name)
