"""Commit what a call created together with its answer.

The answer kept for an ``Idempotency-Key`` and the call's audit row are otherwise
written after the response, in a transaction of their own. Between that transaction
and the call's own commit, a crash loses both: the key stays reserved without an answer
(every retry a 409) and the audit log misses a change that happened. A view that knows
its answer before it commits renders it, writes both into its own transaction and
commits once; the after-request hooks then skip what is already written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify
from sqlalchemy.orm import Session

from api.guards import audit_before_commit
from api.idempotency import answer_before_commit


def commit_with_answer(
    session: Session, render: Callable[[], Any], status: int
) -> tuple[Response, int]:
    """Flush, render the answer (ids and defaults are set by then), write the kept answer
    and the audit row, commit; the response to return."""
    session.flush()
    answer = jsonify(render())
    answer.status_code = status
    answer_before_commit(session, answer)
    audit_before_commit(session, answer)
    session.commit()
    return answer, status
