"""Commit what a call created together with its answer.

The answer kept for an ``Idempotency-Key`` and the call's audit row are otherwise
written after the response, in a transaction of their own. Between that transaction
and the call's own commit, a crash loses both: the key stays reserved without an answer
(every retry a 409) and the audit log misses a change that happened. A view that knows
its answer before it commits renders it, writes both into its own transaction and
commits once; the after-request hooks then skip what is already written.

An answer that holds a secret shown once (a new API key) gives a redacted answer to
keep instead: the secret is never stored, and a retry learns that the key exists and
its prefix (to revoke it and issue another), not the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify
from sqlalchemy.orm import Session

from api.guards import audit_before_commit
from api.idempotency import answer_before_commit
from storage.db import held_writes


def commit_with_answer(
    session: Session,
    render: Callable[[], Any],
    status: int,
    kept: Callable[[], Any] | None = None,
) -> tuple[Response, int]:
    """Flush, render the answer (ids and defaults are set by then), write the answer kept
    for retries (``kept``'s, where given) and the audit row, commit; the response."""
    with held_writes(session):
        answer = write_answer(session, render, status, kept)
    session.commit()
    return answer, status


def write_answer(
    session: Session,
    render: Callable[[], Any],
    status: int,
    kept: Callable[[], Any] | None = None,
) -> Response:
    """:func:`commit_with_answer` without the commit, for a caller that holds writes of
    its own to send with these (``storage.db.held_writes``); the response."""
    session.flush()
    answer = jsonify(render())
    answer.status_code = status
    replay = answer
    if kept is not None:
        replay = jsonify(kept())
        replay.status_code = status
    answer_before_commit(session, replay)
    audit_before_commit(session, answer)
    return answer
