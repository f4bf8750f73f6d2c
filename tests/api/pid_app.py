"""A WSGI app that answers with the pid of the gunicorn worker serving the request, for
tests of api.fifo_worker: which worker took which request, and when.

``/`` answers at once; ``/busy`` takes a second in the app (as one waiting on the
database would: the GIL is free meanwhile);
``/stream`` answers its first chunk at once and then one a second for five seconds (an
event stream); a POST reads its whole body before it answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def _stream(pid: bytes) -> Iterator[bytes]:
    yield pid + b"\n"
    for _ in range(5):
        time.sleep(1.0)
        yield b".\n"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    pid = str(os.getpid()).encode()
    path = environ["PATH_INFO"]
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read()
    elif path == "/busy":
        time.sleep(1.0)
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream(pid)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(pid)))])
    return [pid]
