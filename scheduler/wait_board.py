"""Queue positions and estimated starts of waiting jobs: the last admission pass's answer.

One admitted job moves every job behind it, so keeping positions in SQL would rewrite
the whole queue on every pass (10,000 UPDATEs at that depth, most of a pass's time).
They are derived, not records: each pass posts them to Redis as one hash, swapped in
whole so that a reader never sees half of two passes, and a board lost with Redis is
rebuilt by the next pass. Why a job waits (reason code and text) stays in SQL, where
it changes rarely and is written only when it does.

Posting and reading never raise: a board that cannot be reached leaves positions
unknown (None), it does not fail an admission pass or a request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import redis

log = logging.getLogger(__name__)

BOARD_KEY = "tunepool:admission:board"
# A board no pass has refreshed for this long is stale enough to drop.
BOARD_TTL_S = 3600


class Place(NamedTuple):
    position: int
    estimated_start: float | None


def post_board(client: redis.Redis, places: Mapping[str, Place]) -> None:
    draft = f"{BOARD_KEY}:draft:{os.getpid()}"
    try:
        pipe = client.pipeline(transaction=True)
        pipe.delete(draft)
        if places:
            pipe.hset(draft, mapping={job_id: _encode(p) for job_id, p in places.items()})
            pipe.rename(draft, BOARD_KEY)
            pipe.expire(BOARD_KEY, BOARD_TTL_S)
        else:
            pipe.delete(BOARD_KEY)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("admission board not posted (positions stay as they were): %s", exc)


def read_board(client: redis.Redis, job_ids: Iterable[str]) -> dict[str, Place]:
    ids = list(job_ids)
    if not ids:
        return {}
    try:
        raw: list[bytes | None] = client.hmget(BOARD_KEY, ids)  # type: ignore[assignment]
    except redis.RedisError as exc:
        log.warning("admission board unreadable: %s", exc)
        return {}
    return {job_id: _decode(value) for job_id, value in zip(ids, raw, strict=True) if value}


def _encode(place: Place) -> str:
    start = "" if place.estimated_start is None else f"{place.estimated_start:.0f}"
    return f"{place.position} {start}"


def _decode(value: bytes) -> Place:
    position, _, start = value.decode().partition(" ")
    return Place(int(position), float(start) if start else None)
