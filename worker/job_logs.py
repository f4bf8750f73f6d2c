"""A job's log lines, kept as JobEvents of kind ``log`` so the API can page and stream them.

The handler is attached for the length of one job in the job's own process (a fresh
process per task, DESIGN §3), so everything that process logs belongs to the job.
Lines are batched: one row per second at most, or per ``BATCH_LINES`` lines, so a
chatty library cannot turn every line into a SQL round trip.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from storage.db import transaction
from storage.lease import run_not_taken
from storage.platform import Platform
from storage.states import record_event
from worker.log_noise import grade

FLUSH_S = 1.0
BATCH_LINES = 200
MAX_LINE = 4000
# Our own SQL (and its driver's) logging must never be written back through this handler.
_SKIP = ("sqlalchemy", "alembic", "psycopg", "urllib3", "botocore", "minio")


class JobLogHandler(logging.Handler):
    """``owner``: the run's lease owner; lines are then written only while its run was
    not reaped, so a run that lost its lease (frozen past it, then continued) adds
    nothing to the log of the job its successor now runs."""

    def __init__(self, platform: Platform, job_id: str, owner: str | None = None) -> None:
        super().__init__(logging.INFO)
        self.platform, self.job_id, self.owner = platform, job_id, owner
        self._lines: list[dict[str, Any]] = []
        self._guard = threading.Lock()
        self._writing = threading.local()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run, name=f"logs-{job_id}", daemon=True)

    @classmethod
    def attach(cls, platform: Platform, job_id: str, owner: str | None = None) -> JobLogHandler:
        handler = cls(platform, job_id, owner)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        # Run outside Celery (tests, benchmarks) the root logger may sit at WARNING.
        worker_log = logging.getLogger("worker")
        if worker_log.getEffectiveLevel() > logging.INFO:
            worker_log.setLevel(logging.INFO)
        handler._flusher.start()
        return handler

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._writing, "active", False) or record.name.startswith(_SKIP):
            return
        try:
            # Library decoration (load reports, progress bars) is debug: worker.log_noise.
            level, message = grade(record.levelno, self.format(record))
        except Exception:
            self.handleError(record)
            return
        if level < self.level:
            return
        line = {
            "at": record.created,
            "level": logging.getLevelName(level).lower(),
            "logger": record.name,
            "message": message[:MAX_LINE],
        }
        with self._guard:
            self._lines.append(line)
            full = len(self._lines) >= BATCH_LINES
        if full:
            self.flush()

    def flush(self) -> None:
        with self._guard:
            lines, self._lines = self._lines, []
        if not lines:
            return
        self._writing.active = True
        try:
            with transaction(self.platform.sessions) as session:
                if self.owner is None or run_not_taken(session, self.job_id, self.owner):
                    record_event(session, self.job_id, "log", data={"lines": lines})
        except Exception:
            # Logs are best effort: a lost batch must not fail the job.
            pass
        finally:
            self._writing.active = False

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        logging.getLogger().removeHandler(self)
        self.flush()
        super().close()
