"""An accepted job's rows, written in one statement.

An accepted submission writes four rows: the job, its first event, the audit row and,
with an ``Idempotency-Key``, the key's row holding the answer (the 201) for retries. As
statements of their own they were four round trips to PostgreSQL, each about 0.3 ms of
the API's CPU and some of the server's, besides the reservation's INSERT when the
request came in and the transaction's BEGIN and COMMIT.

On PostgreSQL they are one statement of data-modifying CTEs, and so one transaction:
nothing is half-written whatever fails, without a BEGIN or COMMIT of its own. The key's
row comes first, ``ON CONFLICT DO NOTHING``; the job, its event and the audit row are
written only where it was, so a key that another call has used (a retry, or a
concurrent duplicate, whose uncommitted row this statement waits for) writes nothing,
and the caller replays that call's answer. The event's foreign key holds: PostgreSQL
checks it at the end of the statement, when the job row is there. SQLite runs the same
writes one after another in the caller's transaction, where a statement costs no round
trip.

Each statement is built once, with its parameters prefixed per row (the tables share
column names), so executing one compiles nothing.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import CTE, Executable, Insert, Table, bindparam, exists, insert, select
from sqlalchemy.dialects import postgresql, sqlite
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


def _params(table: Table, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        c.key: bindparam(prefix + c.key, type_=c.type) for c in table.columns if c.key not in skip
    }


_JOB_VALUES = _params(_JOBS, "j_")
_EVENT_VALUES = _params(_EVENTS, "e_", skip=("id",))
_AUDIT_VALUES = _params(_AUDIT, "a_", skip=("id",))
_KEY_VALUES = _params(_KEYS, "k_", skip=("id",))


def _insert_where(table: Table, values: dict[str, Any], written: CTE) -> Insert:
    """INSERT of ``values`` only where the ``written`` CTE returned a row."""
    return insert(table).from_select(
        list(values), select(*values.values()).where(exists(select(written.c.id)))
    )


@cache
def _one_statement(keyed: bool) -> Executable:
    """PostgreSQL: the writes as CTEs of one SELECT that returns the job's id (no row:
    the key was taken, nothing was written)."""
    if keyed:
        kept = (
            postgresql.insert(_KEYS)
            .values(_KEY_VALUES)
            .on_conflict_do_nothing(index_elements=["team_id", "key"])
            .returning(_KEYS.c.id)
            .cte("kept_answer")
        )
        job = _insert_where(_JOBS, _JOB_VALUES, kept).returning(_JOBS.c.id).cte("accepted_job")
    else:
        job = insert(_JOBS).values(_JOB_VALUES).returning(_JOBS.c.id).cte("accepted_job")
    event = _insert_where(_EVENTS, _EVENT_VALUES, job).cte("first_event")
    audit = _insert_where(_AUDIT, _AUDIT_VALUES, job).cte("audit_row")
    return select(job.c.id).add_cte(event, audit)


_KEEP_SQLITE = (
    sqlite.insert(_KEYS)
    .values(_KEY_VALUES)
    .on_conflict_do_nothing(index_elements=["team_id", "key"])
    .returning(_KEYS.c.id)
)
_ROWS_SQLITE = [
    insert(table).values(values)
    for table, values in ((_JOBS, _JOB_VALUES), (_EVENTS, _EVENT_VALUES), (_AUDIT, _AUDIT_VALUES))
]


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    return {prefix + name: value for name, value in values.items()}


def write_accepted(
    session: Session,
    job: dict[str, Any],
    event: dict[str, Any],
    audit: dict[str, Any],
    kept: dict[str, Any] | None,
) -> bool:
    """Write a new job's row, its first event (``storage.states.event_row``), the audit
    row (``storage.audit.row``) and, for an Idempotency-Key, the key's row with the answer
    (``storage.idempotency.answered_row``). False if that key was taken: nothing written.
    """
    params = {
        **_prefixed("j_", job),
        **_prefixed("e_", event),
        **_prefixed("a_", audit),
        **_prefixed("k_", kept or {}),
    }
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return connection.execute(_one_statement(kept is not None), params).scalar() is not None
    if kept is not None and connection.execute(_KEEP_SQLITE, params).first() is None:
        return False
    for statement in _ROWS_SQLITE:
        connection.execute(statement, params)
    return True
