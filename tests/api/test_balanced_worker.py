"""api.balanced_worker: keep-alive clients spread evenly over gunicorn's workers."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.balanced_worker import STALE_S, ConnectionTable
from tunepool.netutil import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


# -- the shared table ---------------------------------------------------------------


def test_fewest_counts_live_rows_only() -> None:
    table = ConnectionTable(4)
    a, b, c = (table.claim(pid, now=100.0) for pid in (11, 12, 13))
    assert (a, b, c) == (0, 1, 2)
    table.update(a, held=5, beat=100.0)
    table.update(b, held=3, beat=100.0)
    table.update(c, held=1, beat=100.0 - STALE_S)  # a worker that stopped beating
    assert table.fewest(now=100.0, floor=9) == 3
    table.release(b)
    assert table.fewest(now=100.0, floor=9) == 5
    assert table.fewest(now=100.0, floor=2) == 2  # the caller's own count is a candidate


def test_a_dead_workers_stale_row_is_reused_a_live_ones_is_not() -> None:
    table = ConnectionTable(2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert table.claim(dead.pid, now=0.0) == 0
    assert table.claim(os.getpid(), now=0.0) == 1  # alive, and stale by the time we look
    later = STALE_S + 1.0
    assert table.claim(4242, now=later) == 0  # the dead worker's row
    assert table.claim(4343, now=later) is None  # the live one's row stays its own


# -- under gunicorn -------------------------------------------------------------------


@pytest.fixture()
def gunicorn_port() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "3",
        "--threads", "2", "-k", "api.balanced_worker.LeastConnectionsWorker",
        "--keep-alive", "60", "tests.api.pid_app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(30)


def _pid_once(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/", headers={"Connection": "close"})
    pid = int(conn.getresponse().read())
    conn.close()
    return pid


def _wait_for_workers(port: int, count: int, exclude: frozenset[int] = frozenset()) -> set[int]:
    """Until ``count`` workers not in ``exclude`` have answered: each runs its loop."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen - exclude) < count:
        assert time.monotonic() < deadline, f"only workers {seen} answered"
        seen.add(_pid_once(port))
    return seen - exclude


def _hold(port: int, clients: int) -> list[tuple[http.client.HTTPConnection, int]]:
    """Open ``clients`` keep-alive connections at once; each with the worker serving it."""
    held: list[tuple[http.client.HTTPConnection, int]] = []
    start = threading.Barrier(clients)
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        start.wait()
        conn.request("GET", "/")
        pid = int(conn.getresponse().read())
        with lock:
            held.append((conn, pid))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return held


def _spread(held: list[tuple[http.client.HTTPConnection, int]]) -> Counter[int]:
    # Each connection is still with the worker that first served it.
    for conn, pid in held:
        conn.request("GET", "/")
        assert int(conn.getresponse().read()) == pid
    return Counter(pid for _, pid in held)


def test_clients_that_connect_together_are_spread_evenly(
    gunicorn_port: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = gunicorn_port
    workers = _wait_for_workers(port, 3)
    held = _hold(port, 12)
    spread = _spread(held)
    assert set(spread) == workers
    assert max(spread.values()) - min(spread.values()) <= 1, spread


def test_a_replacement_worker_takes_the_new_connections(
    gunicorn_port: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = gunicorn_port
    _wait_for_workers(port, 3)
    held = _hold(port, 12)
    spread = _spread(held)
    victim = next(iter(spread))
    os.kill(victim, signal.SIGKILL)  # its row keeps its count until it goes stale
    survivors = {pid: n for pid, n in spread.items() if pid != victim}
    (replacement,) = _wait_for_workers(port, 1, exclude=frozenset(spread))
    again = _hold(port, 12 - sum(survivors.values()))
    now = Counter(survivors) + Counter(pid for _, pid in again)
    assert set(now) == {replacement, *survivors}
    assert max(now.values()) - min(now.values()) <= 1, now
    for conn, _ in held + again:
        conn.close()
