"""Exactly one active beat (DESIGN §8): celery-redbeat's Redis lock, made to survive Redis.

Two ``tunepool beat`` processes may run side by side; the one holding the lock
sends the periodic tasks, the other waits as a stand-by and takes over within
``beat_lock_timeout_s`` when the active one dies. Each entry's last run time lives
in Redis next to the lock, so a beat that takes over does not fire again what the
previous one already fired.

redbeat alone takes the lock once at start-up and crashes on the next tick once the
lock is gone, and after a Redis restart without persistence its schedule entries are
gone too, so nothing would ever fire again. This subclass instead steps down to
stand-by when it loses the lock, tries again each tick, and re-installs the
system schedule whenever it (re)acquires the lock.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import beat_init
from redbeat.schedulers import (
    LUA_EXTEND_TO_SCRIPT,
    RedBeatScheduler,
    acquire_distributed_beat_lock,
    get_redis,
)
from redis.exceptions import LockError, RedisError

log = logging.getLogger(__name__)

# redbeat blocks in beat_init until it holds the lock, and a Redis error there leaves
# it without one; taking the lock from the tick instead handles both the same way.
beat_init.disconnect(acquire_distributed_beat_lock)


class SingleBeatScheduler(RedBeatScheduler):
    """A redbeat scheduler that keeps (or waits for) the lock on every tick."""

    lock: Any = None
    _installed = False

    def setup_schedule(self) -> None:
        # Deferred: only the lock holder writes the schedule into Redis (see _hold_lock).
        self._installed = False

    def tick(self, min: Any = min, **kwargs: Any) -> float:
        try:
            if not self._hold_lock():
                return float(self.max_interval)
            remaining: list[float] = []
            for entry in self.schedule.values():
                next_time_to_run = self.maybe_due(entry, **self._maybe_due_kwargs)
                if next_time_to_run:
                    remaining.append(next_time_to_run)
            return float(min([*remaining, self.max_interval]))
        except RedisError as exc:
            # Redis down or restarting: keep the process, try again shortly.
            log.warning("beat: Redis unavailable (%s); retrying", exc)
            return float(self.max_interval)

    def _hold_lock(self) -> bool:
        """Whether this beat is the active one after this call (renewing or taking the lock)."""
        if self.lock is not None:
            try:
                self.lock.extend(int(self.lock_timeout))
            except LockError:
                log.warning("beat: lost the beat lock (expired or Redis restarted); stand-by")
                self.lock = None
                self._installed = False
        if self.lock is None:
            client = get_redis(self.app)
            lock = client.lock(self.lock_key, timeout=self.lock_timeout)
            # redbeat's script: extend *to* the timeout, not by it.
            lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
            if not lock.acquire(blocking=False):
                return False
            self.lock = lock
            log.info("beat: acquired the beat lock %s; this beat is active", self.lock_key)
        if not self._installed:
            # Idempotent: an entry's last run time (kept in Redis) survives re-installing,
            # and an entry Redis lost is written again.
            RedBeatScheduler.setup_schedule(self)
            self._installed = True
        return True
