"""A gunicorn threaded worker that takes a new connection only while it holds no more
connections than the least-loaded worker: least-connections balancing across workers.

gunicorn's workers share one listening socket, and whichever wakes first accepts. A
keep-alive client then stays with that worker for as long as it keeps sending, so 50
clients that connect together landed 6/12/16/16 on 4 workers (bench/load.py; gunicorn
issues #2817, #3071, #3433). On a busy host each worker process gets about the same CPU
whatever it holds (its threads share one GIL), so the clients of the fullest worker
waited three times as long as those of the emptiest: the latency tail was that worker.

Each worker keeps its count of open connections in a table of shared memory that the
arbiter maps before it forks them. A worker leaves the listening socket while it holds
more than the fewest any live worker holds; the least-loaded worker always qualifies,
so a new connection never waits long for want of a taker (a worker off the socket looks
again every 50 ms). A worker that died without clearing its row stops counting once the
row is a few seconds old.

What this relies on is gunicorn 27's run loop: each turn compares ``nr_conns`` with
``worker_connections`` and, while the limit is reached, takes only the listening socket
out of its poller (``set_accept_enabled``); its keep-alive connections are still served.
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import time
from typing import Any, ClassVar

from gunicorn.workers.gthread import ThreadWorker

from tunepool.processes import process_alive

# A row older than this belongs to a worker that is gone: a live worker's run loop
# writes its row at least once a second (its poller's timeout).
STALE_S = 5.0
# A worker kept off the listening socket by the others' counts looks again this often:
# they change while it waits for its own connections (gunicorn waits up to 1 s).
RECHECK_S = 0.05


class _Row(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_int64), ("held", ctypes.c_int64), ("beat", ctypes.c_double)]


class ConnectionTable:
    """Connections held per worker, in anonymous shared memory: made before the fork,
    read and written by every worker after it (one writer per row, 8-byte fields)."""

    def __init__(self, rows: int) -> None:
        self._memory = mmap.mmap(-1, ctypes.sizeof(_Row) * rows)
        self._rows = (_Row * rows).from_buffer(self._memory)
        self._claiming = multiprocessing.get_context("fork").Lock()

    def claim(self, pid: int, now: float) -> int | None:
        """A free row for this worker (an unused one, or a dead worker's), or None."""
        with self._claiming:
            for index, row in enumerate(self._rows):
                if row.pid == 0 or (now - row.beat >= STALE_S and not process_alive(row.pid)):
                    row.pid, row.held, row.beat = pid, 0, now
                    return index
        return None

    def update(self, index: int, held: int | None = None, beat: float | None = None) -> None:
        row = self._rows[index]
        if held is not None:
            row.held = held
        if beat is not None:
            row.beat = beat

    def release(self, index: int) -> None:
        self._rows[index].pid = 0

    def fewest(self, now: float, floor: int) -> int:
        """The fewest connections a live worker holds; ``floor``: the caller's own count."""
        fewest = floor
        for row in self._rows:
            if row.pid and now - row.beat < STALE_S and row.held < fewest:
                fewest = row.held
        return fewest


class LeastConnectionsWorker(ThreadWorker):
    table: ClassVar[ConnectionTable | None] = None

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Runs in the arbiter before it forks a worker: the table is mapped here."""
        super().check_config(cfg, log)
        if not hasattr(ThreadWorker, "set_accept_enabled"):
            raise RuntimeError(f"{cls.__name__} needs the threaded worker of gunicorn >= 27")
        # Room for workers added at run time (TTIN) and for the replacements of dead ones.
        cls.table = ConnectionTable(max(2 * int(cfg.workers), 16))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._row: int | None = None
        self._held = 0
        super().__init__(*args, **kwargs)
        self._most = self.cfg.worker_connections

    # gunicorn's run loop reads these two on every turn.

    @property
    def nr_conns(self) -> int:
        return self._held

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._held = value
        if self.table is not None and self._row is not None:
            self.table.update(self._row, held=value)

    @property
    def worker_connections(self) -> int:
        """This worker accepts while it holds fewer connections than this."""
        if self.table is None or self._row is None:
            return int(self._most)
        return min(int(self._most), self.table.fewest(time.monotonic(), self._held) + 1)

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._most = value

    def accept(self, listener: Any) -> None:
        # The choice to listen was made at the top of this turn of the loop; since then
        # another worker may have come down to fewer connections (one closed, or a new
        # worker started): leave the connection to it.
        if self.nr_conns >= self.worker_connections:
            return
        super().accept(listener)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if not self._accepting and self.nr_conns < self._most:
            timeout = min(timeout, RECHECK_S)
        super().wait_for_and_dispatch_events(timeout)

    def notify(self) -> None:
        super().notify()
        if self.table is not None and self._row is not None:
            self.table.update(self._row, beat=time.monotonic())

    def run(self) -> None:
        if self.table is not None:
            # Only now, with the app loaded: a worker still loading would count as the
            # least loaded and hold the others back from new connections meanwhile.
            # Without a row (more workers than rows) it accepts as gunicorn's own does.
            self._row = self.table.claim(os.getpid(), time.monotonic())
        try:
            super().run()
        finally:
            if self.table is not None and self._row is not None:
                self.table.release(self._row)
                self._row = None
