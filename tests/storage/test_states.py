"""The job state machine: every transition recorded, illegal ones refused, CAS semantics."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Job, JobEvent, Team
from storage.states import ALLOWED, TERMINAL, IllegalTransition, JobState, transition

S = JobState


def make_job(session: Session, state: JobState = S.PENDING) -> str:
    team = Team(name=f"t-{len(session.scalars(select(Team)).all())}")
    session.add(team)
    session.flush()
    job = Job(
        team_id=team.id, type="finetune", task="token-classification", spec={}, state=state.value
    )
    session.add(job)
    session.commit()
    return job.id


def test_transition_records_an_event_with_old_new_and_reason(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        job_id = make_job(session)
        assert transition(session, job_id, S.QUEUED, reason="admitted to w1")
        session.commit()
        events = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
        assert [(e.old_state, e.new_state, e.reason) for e in events] == [
            ("pending", "queued", "admitted to w1")
        ]
        assert session.get(Job, job_id).state == "queued"  # type: ignore[union-attr]


def test_illegal_transition_raises_and_changes_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        job_id = make_job(session, S.SUCCEEDED)
        with pytest.raises(IllegalTransition, match="succeeded -> running"):
            transition(session, job_id, S.RUNNING, reason="no")
        session.rollback()
        assert session.get(Job, job_id).state == "succeeded"  # type: ignore[union-attr]
        assert session.scalars(select(JobEvent)).all() == []


def test_expect_makes_a_compare_and_set(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        job_id = make_job(session, S.CANCELLED)
        # A duplicate delivery finds the job cancelled: nothing happens, no error.
        assert not transition(session, job_id, S.RUNNING, reason="claim", expect={S.QUEUED})
        assert session.scalars(select(JobEvent)).all() == []


def test_two_sessions_cannot_both_move_the_same_job(sessions: sessionmaker[Session]) -> None:
    with sessions() as a:
        job_id = make_job(a, S.QUEUED)
    with sessions() as first, sessions() as second:
        assert transition(first, job_id, S.RUNNING, reason="first", expect={S.QUEUED})
        first.commit()
        assert not transition(second, job_id, S.RUNNING, reason="second", expect={S.QUEUED})
    with sessions() as check:
        runs = check.scalars(select(JobEvent).where(JobEvent.new_state == "running")).all()
        assert [e.reason for e in runs] == ["first"]


def test_terminal_states_have_no_way_out_and_every_state_has_a_row() -> None:
    assert set(ALLOWED) == set(JobState)
    for state in TERMINAL:
        assert ALLOWED[state] == frozenset()
    # A preempted job goes back to pending; a cancelled one never comes back.
    assert S.PENDING in ALLOWED[S.PREEMPTING]
    assert S.PENDING not in ALLOWED[S.CANCELLED]
