"""One Redis client per process and URL, for the small things kept outside SQL.

A forked child must not share its parent's sockets, so the cache is keyed by pid.
Timeouts are short: what goes through here (metrics, the admission board, wake-ups)
is never worth blocking a request or an admission pass for.
"""

from __future__ import annotations

import os

import redis

_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_client(url: str) -> redis.Redis:
    key = (os.getpid(), url)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[key]
