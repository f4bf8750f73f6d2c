"""How long each worker takes to start a job: from admission to its first training step.

Publishing the task, forking the job process, importing torch, loading the model and
the data take 10 to 50 s on the machines measured, before any step is trained. The
estimated start of a waiting job (scheduler.wait_reasons) counts it, per worker: each
job's first progress report adds a sample (worker.job_callbacks), kept as an
exponential moving average so that one slow cold start (an empty page cache) does not
stand for the worker for ever. Kept in Redis beside the wait board: derived figures,
rebuilt by the next jobs if Redis loses them. Reading and writing never raise; an
unknown worker starts in 0 s, as before these were measured.
"""

from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)

STARTUP_KEY = "tunepool:workers:startup_s"
# Weight of the newest sample: a lasting change shows within a few jobs.
SMOOTHING = 0.3
# Beyond this a "start" was something else (a job resumed long after its admission).
MAX_SAMPLE_S = 3600.0

# Atomic read-modify-write: two jobs of one worker may report at once.
_RECORD = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = tonumber(ARGV[2])
if old then new = tonumber(old) + tonumber(ARGV[3]) * (new - tonumber(old)) end
redis.call('HSET', KEYS[1], ARGV[1], tostring(new))
return tostring(new)
"""


def record_startup(client: redis.Redis, worker: str, seconds: float) -> float | None:
    """Add one sample; returns the worker's new average (None if not recorded)."""
    if not 0 <= seconds <= MAX_SAMPLE_S:
        return None
    try:
        value = client.eval(_RECORD, 1, STARTUP_KEY, worker, f"{seconds:.3f}", str(SMOOTHING))
    except redis.RedisError as exc:
        log.warning("start-up time of %s not recorded: %s", worker, exc)
        return None
    return float(value)


def startup_times(client: redis.Redis) -> dict[str, float]:
    """Every worker's average start-up time in seconds."""
    try:
        raw: dict[bytes, bytes] = client.hgetall(STARTUP_KEY)  # type: ignore[assignment]
    except redis.RedisError as exc:
        log.warning("start-up times unreadable: %s", exc)
        return {}
    return {name.decode(): float(value) for name, value in raw.items()}
