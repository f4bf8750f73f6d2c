"""One Redis client per process and URL, for the small things kept outside SQL.

A forked child must not share its parent's sockets, so the cache is keyed by pid.
Timeouts are short: what goes through here (metrics, the admission board, wake-ups)
is never worth blocking a request or an admission pass for.
"""

from __future__ import annotations

import functools
import os

import redis
import redis.utils

_clients: dict[tuple[int, str], redis.Redis] = {}


def redis_client(url: str) -> redis.Redis:
    key = (os.getpid(), url)
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[key]


def warm_redis_version() -> None:
    """Ask redis-py for its own version once per process tree, not once per connection.

    redis-py sends its version with CLIENT SETINFO on every new connection (ours and
    kombu's), and finds it through importlib.metadata each time: a scan of the import
    path and a parse of its METADATA file, milliseconds of CPU. A worker's one-job
    children open their connections anew for every job, so they paid it per job. The
    installed version cannot change under a running process: cache it, and fill the
    cache (before a fork, the parent's) now.
    """
    if not hasattr(redis.utils.get_lib_version, "cache_info"):
        redis.utils.get_lib_version = functools.cache(redis.utils.get_lib_version)
    redis.utils.get_lib_version()
