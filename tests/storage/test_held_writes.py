"""Writes held to the end of a block go out together: one statement on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import bindparam, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage import audit
from storage.audit import AuditEvent
from storage.db import held_writes, write_core
from storage.models import Job, JobEvent, Team, table_of
from storage.states import record_event

JOBS = table_of(Job)
REASON = update(JOBS).where(JOBS.c.id == bindparam("r_id")).values(reason=bindparam("r_reason"))


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs (SQLite's BEGIN aside)."""
    sent: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if not statement.startswith("BEGIN"):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def a_job(session: Session) -> Job:
    team = Team(name="held")
    session.add(team)
    session.flush()
    job = Job(
        team_id=team.id, type="finetune", task="token-classification", spec={}, state="pending"
    )
    session.add(job)
    session.flush()
    return job


def audit_row(status: int) -> dict[str, object]:
    return {
        "team_id": None,
        "key_id": None,
        "role": None,
        "method": "POST",
        "path": "/v1/jobs",
        "endpoint": "jobs.submit",
        "status": status,
        "remote_addr": "127.0.0.1",
    }


def test_held_writes_go_out_when_the_block_ends_in_order_of_holding(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        job = a_job(session)
        with statements(engine) as sent, held_writes(session):
            record_event(session, job.id, "state", new="pending", reason="accepted")
            audit.record(session, **audit_row(201))
            write_core(session, REASON, {"r_id": job.id, "r_reason": "held"})
            assert sent == []  # nothing yet: they wait for the end of the block
        expected = 1 if engine.dialect.name == "postgresql" else 3
        assert len(sent) == expected
        if expected == 1:
            assert sent[0].startswith("WITH held_0 AS")
        session.commit()
    with sessions() as session:
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id)).all()
        assert [(e.new_state, e.reason) for e in events] == [("pending", "accepted")]
        assert [a.status for a in session.scalars(select(AuditEvent))] == [201]
        assert session.get(Job, job.id).reason == "held"  # type: ignore[union-attr]


def test_outside_a_block_a_write_runs_at_once(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session, statements(engine) as sent:
        audit.record(session, **audit_row(200))
        assert len(sent) == 1
        session.commit()


def test_a_block_left_by_an_exception_sends_nothing(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        with statements(engine) as sent, pytest.raises(ValueError), held_writes(session):
            audit.record(session, **audit_row(201))
            raise ValueError("the call failed")
        assert sent == []
        # The session is usable, and nothing was held over into later writes.
        audit.record(session, **audit_row(500))
        session.commit()
        assert [a.status for a in session.scalars(select(AuditEvent))] == [500]


def test_blocks_do_not_nest(sessions: sessionmaker[Session]) -> None:
    with (
        sessions() as session,
        held_writes(session),
        pytest.raises(RuntimeError, match="do not nest"),
        held_writes(session),
    ):
        pass


def test_writes_naming_a_parameter_alike_are_refused_not_mixed_up(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL sends held writes as one statement")
    clash = update(JOBS).where(JOBS.c.id == bindparam("r_id")).values(error=bindparam("r_reason"))
    with sessions() as session:
        job = a_job(session)
        with pytest.raises(ValueError, match="name a parameter alike"), held_writes(session):
            write_core(session, REASON, {"r_id": job.id, "r_reason": "one"})
            write_core(session, clash, {"r_id": job.id, "r_reason": "two"})
