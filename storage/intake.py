"""An accepted job's rows, written in one statement.

A submission that is accepted writes four rows in its transaction: the job, its first
event, the answer kept for its ``Idempotency-Key`` (an UPDATE of the reservation made
when the request came in), and the audit row. As statements of their own they were four
round trips to PostgreSQL, each about 0.3 ms of the API's CPU and some of the server's,
and the job's went through the unit of work's flush besides. On PostgreSQL they are one
statement of data-modifying CTEs. The event's foreign key holds: PostgreSQL checks it at
the end of the statement, when the job row is there. SQLite runs the same four
statements one after another, in process, where a statement costs no round trip.

Each statement is built once, with its parameters prefixed per row (the tables share
column names), so executing one compiles nothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Executable, Insert, Table, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session

from storage.audit import AuditEvent
from storage.idempotency import IdempotencyKey
from storage.models import Job, JobEvent, table_of

_JOBS, _EVENTS, _AUDIT, _KEYS = (
    table_of(Job),
    table_of(JobEvent),
    table_of(AuditEvent),
    table_of(IdempotencyKey),
)


def _insert(table: Table, prefix: str, *, skip: tuple[str, ...] = ()) -> Insert:
    return insert(table).values(
        {c.key: bindparam(prefix + c.key, type_=c.type) for c in table.columns if c.key not in skip}
    )


_JOB = _insert(_JOBS, "j_")
_EVENT = _insert(_EVENTS, "e_", skip=("id",))
_AUDIT_ROW = _insert(_AUDIT, "a_", skip=("id",))
_ANSWER: Update = (
    update(_KEYS)
    .where(_KEYS.c.team_id == bindparam("k_w_team_id"), _KEYS.c.key == bindparam("k_w_key"))
    .values(
        {
            name: bindparam("k_" + name, type_=_KEYS.c[name].type)
            for name in ("status", "body", "content_type")
        }
    )
)


@cache
def _one_statement(with_answer: bool) -> Executable:
    """PostgreSQL: the four writes as CTEs of one SELECT that returns the job's id."""
    job = _JOB.returning(_JOBS.c.id).cte("accepted_job")
    writes = [_EVENT.cte("first_event"), _AUDIT_ROW.cte("audit_row")]
    if with_answer:
        writes.append(_ANSWER.cte("kept_answer"))
    return select(job.c.id).add_cte(*writes)


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in values.items()}


def write_accepted(
    session: Session,
    job: dict[str, Any],
    event: dict[str, Any],
    audit: dict[str, Any],
    answer: dict[str, Any] | None,
) -> None:
    """Write a new job's row, its first event (``storage.states.event_row``), the audit
    row (``storage.audit.row``) and, with an Idempotency-Key, the answer kept for it
    (``storage.idempotency.answer_values``) in the session's transaction."""
    params = {
        **_prefixed("j_", job),
        **_prefixed("e_", event),
        **_prefixed("a_", audit),
        **_prefixed("k_", answer or {}),
    }
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(_one_statement(answer is not None), params).scalar_one()
        return
    statements: list[Executable] = [_JOB, _EVENT, _AUDIT_ROW]
    if answer is not None:
        statements.append(_ANSWER)
    for statement in statements:
        connection.execute(statement, params)
