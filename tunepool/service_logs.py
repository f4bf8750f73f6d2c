"""The log files of the services ``tunepool up`` starts, rotated by size.

Each service's stdout and stderr come through a pipe that one thread of ``up`` copies,
line by line, into ``TUNEPOOL_HOME/logs/<service>.log`` through the standard library's
RotatingFileHandler: at ``max_bytes`` the file becomes ``<service>.log.1`` (and so on,
``backups`` of them), so a platform left running for weeks no longer fills the disk.
One writer per file (``up``), which is what RotatingFileHandler needs; a restarted
service appends to the same file.
"""

from __future__ import annotations

import logging
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO


class ServiceLog:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handler = RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.threads: list[threading.Thread] = []

    def copy(self, stream: IO[bytes], name: str) -> threading.Thread:
        """Copy ``stream`` (a child's stdout) into the file until the child closes it."""
        thread = threading.Thread(
            target=self._copy, args=(stream,), name=f"log-{name}", daemon=True
        )
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _copy(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.handler.handle(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))

    def close(self, timeout_s: float = 5.0) -> None:
        """After the child ended: the rest of its output, then the file is closed."""
        for thread in self.threads:
            thread.join(timeout_s)
        self.handler.close()
