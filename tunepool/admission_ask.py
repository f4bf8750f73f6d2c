"""Asking for an admission pass without running one: how submits and finished jobs wake
the scheduler.

A pass reads the whole pending queue, so running one inside every submit makes each
submit cost O(queue) and a burst of N submits O(N x queue). Instead a caller commits
its job and asks for a pass; the first ask in a window sends one ``ADMIT_TASK``
to the control queue, due when the window closes, and later asks in that window are
already covered by it: each of them committed before the window closed, and the pass
reads the queue after it. The ask also reads how long the window has left (one round
trip), and the process skips Redis until it closes: an ask inside the window would find
the key and send nothing. The beat's admission tick
(``admission_interval_s``) covers a lost message or an unreachable Redis, so an ask can
fail without losing a job.

A pass reads the whole queue, so at a deep queue it is slow, and back-to-back passes
would take a core from the submits that fill the queue. Each pass therefore sets the
next window (``record_pass``): at least ``admission_coalesce_s``, and long enough that
passes take at most ``admission_duty`` of the time (Slurm's main scheduler spaces its
runs the same way). A 5 ms pass leaves the window as configured; a 300 ms pass over
10,000 pending jobs stretches it to 1.2 s at a duty of 0.2.

``admission_coalesce_s = 0`` runs the pass inline instead (single-process setups and
tests without a control worker): the caller says how (``run_inline``), so that this
ask lives in the core and both the API/scheduler (``scheduler.admission_requests``) and
the worker, which may not import the scheduler, ask the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from weakref import WeakKeyDictionary

import redis

from tunepool.messages import ADMIT_TASK, CONTROL_QUEUE
from tunepool.redis_client import redis_client
from tunepool.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """What an ask needs of a process's handles (``storage.platform.Platform`` is one):
    the settings and an app to send by task name. The core names no storage type."""

    @property
    def settings(self) -> Settings: ...

    @property
    def celery(self) -> Celery: ...


ASK_KEY = "tunepool:admission:asked"
# The window the last pass asked for, in milliseconds (record_pass).
PACE_KEY = "tunepool:admission:pace_ms"

# SET NX for the longer of the configured window and the paced one, then the key's time
# left: one round trip, as the pipeline it replaces. (KEYS: ask, pace; ARGV: window ms.)
_ASK_SCRIPT = """
local window = tonumber(ARGV[1])
local paced = tonumber(redis.call('GET', KEYS[2]) or 0)
if paced > window then window = paced end
local first = redis.call('SET', KEYS[1], '1', 'NX', 'PX', window)
return {first and 1 or 0, redis.call('PTTL', KEYS[1])}
"""

# Per platform (so per process), until when a pass already sent will still see a new
# commit: asks before then skip Redis, one round trip less on nearly every submit.
_covered_until: WeakKeyDictionary[Publisher, float] = WeakKeyDictionary()


def ask_for_admission(platform: Publisher, run_inline: Callable[[], object]) -> bool:
    """True if a pass ran here and then (the caller's rows may have changed), else False."""
    settings = platform.settings
    window = settings.admission_coalesce_s
    if window <= 0:
        run_inline()
        return True
    asked = time.monotonic()
    if _covered_until.get(platform, 0.0) > asked:
        return False
    try:
        client = redis_client(settings.redis_url)
        first, left_ms = client.register_script(_ASK_SCRIPT)(
            keys=[ASK_KEY, PACE_KEY], args=[int(window * 1000)]
        )
        if first:
            due = left_ms / 1000
            # `expires`: a pass that could not run for a whole tick is superseded by the tick.
            platform.celery.send_task(
                ADMIT_TASK,
                queue=CONTROL_QUEUE,
                countdown=due,
                expires=due + settings.admission_interval_s,
            )
        # The window's pass runs when the key expires, and Redis counted `left_ms` from a
        # moment after `asked`: until asked + left_ms the key is still there, so an ask
        # from this process would send nothing, and its commits till then are read by
        # that pass. (-2: the key expired in between; ask again next time.)
        if left_ms > 0:
            _covered_until[platform] = asked + left_ms / 1000
    except Exception as exc:  # Redis or the broker unreachable: the beat tick admits
        log.warning("could not ask for an admission pass (the next tick will admit): %s", exc)
    return False


def paced_window(settings: Settings, pass_s: float) -> float:
    """The window after a pass of ``pass_s`` seconds: passes take at most ``admission_duty``
    of the time, and no window is shorter than ``admission_coalesce_s``."""
    gap = pass_s * (1 / settings.admission_duty - 1)
    return max(settings.admission_coalesce_s, gap)


def record_pass(client: redis.Redis, settings: Settings, pass_s: float) -> None:
    """Set the window of the asks after a pass (a no-op when passes run inline).

    The pace outlives two beat ticks: a deep queue keeps it fresh through the ticks'
    passes, and once passes stop it lapses back to ``admission_coalesce_s``.
    """
    if settings.admission_coalesce_s <= 0:
        return
    window_ms = int(paced_window(settings, pass_s) * 1000)
    keep_ms = window_ms + int(2 * settings.admission_interval_s * 1000)
    try:
        client.set(PACE_KEY, window_ms, px=keep_ms)
    except redis.RedisError as exc:
        log.warning("admission pace not recorded (asks keep the configured window): %s", exc)
