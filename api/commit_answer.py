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

from api.guards import audit_before_commit, audit_values, audited
from api.idempotency import answer_before_commit, committed, kept_row, taken_key_answer
from storage.intake import write_accepted
from storage.job_factory import first_event
from storage.models import Job, with_defaults


def commit_with_answer(
    session: Session,
    render: Callable[[], Any],
    status: int,
    kept: Callable[[], Any] | None = None,
) -> tuple[Response, int]:
    """Flush, render the answer (ids and defaults are set by then), write the answer kept
    for retries (``kept``'s, where given) and the audit row, commit; the response."""
    session.flush()
    answer = jsonify(render())
    answer.status_code = status
    replay = answer
    if kept is not None:
        replay = jsonify(kept())
        replay.status_code = status
    answer_before_commit(session, replay)
    audit_before_commit(session, answer)
    session.commit()
    return answer, status


def commit_new_job(
    session: Session, job: Job, render: Callable[[Job], Any]
) -> tuple[Response, bool]:
    """``commit_with_answer`` for a new pending job, in one statement (storage.intake): the
    job, its first event, the audit row and the key's row with the answer, for a view
    marked ``api.context.one_statement``. ``job`` is not added to the session; its unset
    columns get their defaults first, so the answer shows them. (answer, True) once
    committed; where another call has taken the key, nothing is written: (that call's
    answer, False)."""
    values = with_defaults(job)
    answer = jsonify(render(job))
    answer.status_code = 201
    event = first_event(job)
    if not write_accepted(session, values, event, audit_values(answer), kept_row(answer)):
        # On PostgreSQL the request is in autocommit (api.context.one_statement): the
        # statement wrote nothing and left no transaction, and the taken key's answer is
        # read on the same connection. A rollback would hand it back, and the read would
        # then take another with a BEGIN and a ROLLBACK of its own. SQLite's transaction
        # holds the write lock since the INSERT: end it first.
        if session.get_bind().dialect.name != "postgresql":
            session.rollback()
        return taken_key_answer(session), False
    session.commit()
    committed()
    audited(answer)
    return answer, True
