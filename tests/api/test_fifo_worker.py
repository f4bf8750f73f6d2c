"""api.fifo_worker: a gunicorn worker takes a connection only while none of its own
requests is being answered, so the listening socket's backlog is one queue in order."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api.fifo_worker import HOLD_MAX_S
from tunepool.netutil import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
# Each check below waits for an answer that the gate would hold back for seconds.
PROMPT_S = 1.0


def _serve(workers: int) -> Iterator[int]:
    port = free_port()
    argv = [
        sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers),
        "--threads", "4", "-k", "api.fifo_worker.FifoWorker", "--keep-alive", "0",
        "tests.api.pid_app:app",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def one_worker() -> Iterator[int]:
    yield from _serve(1)


@pytest.fixture(scope="module")
def two_workers() -> Iterator[int]:
    yield from _serve(2)


def _get(port: int, path: str = "/") -> tuple[int, float, http.client.HTTPResponse]:
    """(pid that answered, seconds it took, the response)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    pid = int(resp.read())
    conn.close()
    return pid, time.monotonic() - started, resp


def _answered_promptly(port: int) -> None:
    _, took, _ = _get(port)
    assert took < PROMPT_S, f"a plain request waited {took:.1f} s"


def _in_background(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def test_a_worker_answering_a_request_leaves_new_ones_to_a_free_worker(two_workers: int) -> None:
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2:  # both workers are up and listening
        assert time.monotonic() < deadline, f"only workers {seen} answered"
        seen.add(_get(two_workers)[0])
    started = time.monotonic()
    busy, result = _in_background(lambda: _get(two_workers, "/busy")[0])
    time.sleep(0.2)
    quick = []
    # Within the busy request's first second: after HOLD_MAX_S its worker listens again.
    while len(quick) < 8 and time.monotonic() - started < 0.8 * HOLD_MAX_S:
        pid, took, resp = _get(two_workers)
        assert resp.getheader("Connection") == "close"  # every request goes through the queue
        assert took < PROMPT_S
        quick.append(pid)
    busy.join()
    assert quick and result and result[0] not in quick, (result, quick)


def test_an_event_stream_does_not_hold_its_worker(one_worker: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", one_worker, timeout=30)
    conn.request("GET", "/stream")
    stream = conn.getresponse()
    stream.readline()  # the stream is open, and will be for 5 s
    _answered_promptly(one_worker)
    conn.close()


def test_a_client_that_sends_nothing_does_not_hold_its_worker(one_worker: int) -> None:
    with socket.create_connection(("127.0.0.1", one_worker)):
        time.sleep(0.1)  # accepted, and silent (gunicorn waits 5 s for its request)
        _answered_promptly(one_worker)


def test_a_large_upload_at_the_clients_pace_does_not_hold_its_worker(one_worker: int) -> None:
    size = 4 << 20
    with socket.create_connection(("127.0.0.1", one_worker)) as upload:
        head = f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
        upload.sendall(head.encode())
        upload.sendall(b"x" * 4096)
        time.sleep(0.1)  # the app is reading the body, and the client is slow
        _answered_promptly(one_worker)
        upload.sendall(b"x" * (size - 4096))
        assert upload.makefile("rb").readline().startswith(b"HTTP/1.1 200")


def test_a_client_stalled_in_its_headers_holds_its_worker_for_a_second_at_most(
    one_worker: int,
) -> None:
    with socket.create_connection(("127.0.0.1", one_worker)) as stalled:
        stalled.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and the rest never comes
        time.sleep(0.1)
        _, took, _ = _get(one_worker)
        assert took < HOLD_MAX_S + PROMPT_S, f"a plain request waited {took:.1f} s"
