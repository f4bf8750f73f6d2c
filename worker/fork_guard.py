"""Keep the worker's own threads out of SQL transactions while Celery forks a child.

The prefork pool forks a fresh child for every task (one task per child) from the main
thread, while the heartbeat thread talks to SQL. A child forked in the middle of one of
the heartbeat's SQLite transactions inherits SQLite's in-process bookkeeping of locks it
does not hold, and its own connections then wait for a write lock that never frees
("database is locked" after the busy timeout). A child forked while the heartbeat
starts a subprocess inherits the pipes to it and keeps them open, so the heartbeat's
wait for that subprocess lasts as long as the child. Forking waits for this guard, and
the heartbeat holds it around each transaction and each subprocess it starts.
"""

from __future__ import annotations

import os
import threading

guard = threading.Lock()
_installed = False


def install() -> None:
    """Make fork wait for the guard (once per process; forked children inherit it)."""
    global _installed
    if _installed:
        return
    os.register_at_fork(
        before=guard.acquire, after_in_parent=guard.release, after_in_child=guard.release
    )
    _installed = True
