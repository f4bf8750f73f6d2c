"""A pass writes why each job waits: only where that changed, only onto jobs still pending."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scheduler.admission import _record_reasons
from scheduler.planner import AdmissionPlan, Wait
from storage.models import Job, Team
from storage.states import JobState, transition

S = JobState


def _pending_jobs(session: Session, count: int) -> list[str]:
    team = Team(name="reasons")
    session.add(team)
    session.flush()
    jobs = [
        Job(
            team_id=team.id,
            type="finetune",
            task="token-classification",
            spec={},
            state=S.PENDING.value,
            reason_code="admission",
            reason="waiting for the next admission pass",
        )
        for _ in range(count)
    ]
    session.add_all(jobs)
    session.commit()
    return [j.id for j in jobs]


def test_reasons_change_on_pending_jobs_and_leave_a_moved_job_alone(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        waiting, cancelled, unchanged = _pending_jobs(session, 3)
        before = {
            job_id: ("admission", "waiting for the next admission pass")
            for job_id in (waiting, cancelled)
        }
        # The pass believes this one already says so: it writes nothing there.
        before[unchanged] = ("fair_share", "teams below their fair share of the pool go first")
        # Cancelled by its owner after the pass read the queue, before it wrote reasons.
        assert transition(session, cancelled, S.CANCELLED, reason="cancelled by its owner")
        session.commit()
        decided = AdmissionPlan()
        fair = Wait("fair_share", "teams below their fair share of the pool go first", 1, None)
        decided.waits = {waiting: fair, cancelled: fair, unchanged: fair}
        _record_reasons(session, decided, before)
        session.commit()
        rows = {
            r.id: (r.state, r.reason_code, r.reason)
            for r in session.execute(select(Job.id, Job.state, Job.reason_code, Job.reason))
        }
    assert rows[waiting] == ("pending", "fair_share", fair.reason)
    assert rows[unchanged] == ("pending", "admission", "waiting for the next admission pass")
    assert rows[cancelled][0] == "cancelled"
    assert rows[cancelled][1:] != ("fair_share", fair.reason)
