"""Writes that follow a request's answer, in one transaction: its audit row and, for an
``Idempotency-Key``, the answer kept for retries.

Each was its own transaction (a pool checkout, BEGIN, COMMIT and on PostgreSQL a WAL
flush) on every mutating call. Hooks ``defer`` their write; the hook installed here,
first and so run last of the after-request hooks, applies them together. If that
transaction fails, each write is tried alone, so that a failing audit row cannot cost a
client its kept answer (or the other way round).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, Response, g
from sqlalchemy.orm import Session

from api.context import close_db, platform
from storage.db import transaction

log = logging.getLogger(__name__)

Write = Callable[[Session], None]


def defer(write: Write, what: str) -> None:
    writes: list[tuple[Write, str]] = g.setdefault("after_writes", [])
    writes.append((write, what))


def install(app: Flask) -> None:
    @app.after_request
    def _apply(response: Response) -> Response:
        writes: list[tuple[Write, str]] = g.pop("after_writes", [])
        if not writes:
            return response
        close_db()  # the view has committed what it meant to
        sessions = platform().sessions
        try:
            with transaction(sessions) as session:
                for write, _ in writes:
                    write(session)
            return response
        except Exception:
            log.warning("after-request writes failed together; trying each alone", exc_info=True)
        for write, what in writes:
            try:
                with transaction(sessions) as session:
                    write(session)
            except Exception:
                log.exception("could not write %s", what)
        return response
