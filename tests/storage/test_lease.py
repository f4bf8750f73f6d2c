"""Claims and leases: one runner per job, renewals, reaping back to pending."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from storage.lease import claim, reap_expired, renew_lease, requeue_unclaimed
from storage.models import Checkpoint, Job, JobEvent, JobRun, Team
from storage.states import JobState

S = JobState


def queued_job(sessions: sessionmaker[Session], worker: str = "w1", max_attempts: int = 3) -> str:
    with sessions() as session:
        team = Team(name="lease-team")
        session.add(team)
        session.flush()
        job = Job(
            team_id=team.id,
            type="finetune",
            task="token-classification",
            spec={},
            state=S.QUEUED.value,
            worker_name=worker,
            queued_at=time.time(),
            max_attempts=max_attempts,
        )
        session.add(job)
        session.commit()
        return job.id


def test_only_one_of_two_claims_wins(sessions: sessionmaker[Session]) -> None:
    job_id = queued_job(sessions)
    with sessions() as a, sessions() as b:
        first = claim(a, job_id, "w1", "w1/1/a", ttl_s=30)
        a.commit()
        second = claim(b, job_id, "w1", "w1/2/b", ttl_s=30)
        b.commit()
    assert first is not None and first.attempt == 1
    assert second is None
    with sessions() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.state == "running" and job.lease_owner == "w1/1/a"
        assert len(s.scalars(select(JobRun)).all()) == 1


def test_a_message_for_another_worker_is_not_claimed(sessions: sessionmaker[Session]) -> None:
    job_id = queued_job(sessions, worker="w2")
    with sessions() as s:
        assert claim(s, job_id, "w1", "w1/1/a", ttl_s=30) is None


def test_renewal_needs_the_lease(sessions: sessionmaker[Session]) -> None:
    job_id = queued_job(sessions)
    with sessions() as s:
        assert claim(s, job_id, "w1", "w1/1/a", ttl_s=30)
        s.commit()
        assert renew_lease(s, job_id, "w1/1/a", ttl_s=60)
        assert not renew_lease(s, job_id, "w9/9/z", ttl_s=60)
        s.commit()


def test_expired_lease_is_reaped_to_pending_then_fails_after_max_attempts(
    sessions: sessionmaker[Session],
) -> None:
    job_id = queued_job(sessions, max_attempts=2)
    for attempt in (1, 2):
        with sessions() as s:
            got = claim(s, job_id, "w1", f"w1/{attempt}", ttl_s=0.01)
            s.commit()
            assert got is not None and got.attempt == attempt
        time.sleep(0.05)
        with sessions() as s:
            assert reap_expired(s) == [job_id]
            s.commit()
            job = s.get(Job, job_id)
            assert job is not None
            if attempt == 1:
                assert job.state == "pending" and job.reason_code == "lease_expired"
                assert not renew_lease(s, job_id, "w1/1", ttl_s=30)  # the old runner lost it
                job.state, job.worker_name, job.queued_at = "queued", "w1", time.time()
                s.commit()
            else:
                assert job.state == "failed" and "w1/2 expired" in (job.error or "")
    with sessions() as s:
        runs = s.scalars(select(JobRun).order_by(JobRun.attempt)).all()
        assert [r.outcome for r in runs] == ["lease_expired", "lease_expired"]
        assert all(r.ended_at is not None for r in runs)


def test_unclaimed_queued_job_returns_to_pending(sessions: sessionmaker[Session]) -> None:
    job_id = queued_job(sessions)
    with sessions() as s:
        assert requeue_unclaimed(s, timeout_s=60) == []
        assert requeue_unclaimed(s, timeout_s=60, now=time.time() + 120) == [job_id]
        s.commit()
        job = s.get(Job, job_id)
        assert job is not None and job.state == "pending" and job.worker_name is None


def test_the_reaper_says_what_the_next_attempt_starts_from(
    sessions: sessionmaker[Session],
) -> None:
    """Only a job with a checkpoint resumes; one without (every inference or compress
    job, a training run reaped before its first checkpoint) restarts from the beginning."""
    job_id = queued_job(sessions)

    def reap_once(owner: str) -> str:
        with sessions() as s:
            assert claim(s, job_id, "w1", owner, ttl_s=0.01) is not None
            s.commit()
        time.sleep(0.05)
        with sessions() as s:
            assert reap_expired(s) == [job_id]
            s.commit()
            event = s.scalars(
                select(JobEvent)
                .where(JobEvent.job_id == job_id, JobEvent.new_state == "pending")
                .order_by(JobEvent.id.desc())
            ).first()
            assert event is not None and event.reason is not None
            job = s.get(Job, job_id)
            assert job is not None
            job.state, job.worker_name, job.queued_at = "queued", "w1", time.time()
            s.commit()
            return event.reason

    first = reap_once("w1/1")
    assert "restarts from the beginning" in first and "resume" not in first
    with sessions() as s:
        s.add(Checkpoint(job_id=job_id, attempt=2, step=40, epoch=0.5, prefix="p/", metrics={}))
        s.commit()
    assert "will resume from its checkpoint at step 40" in reap_once("w1/2")
