"""The reconciler publishes again exactly the queued jobs whose message Redis no longer has."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from commands.redis_server import RedisServer
from scheduler.dispatch import celery_publisher
from scheduler.reconciler import job_id_of, redis_messages, republish_lost
from storage.models import Job, JobEvent
from storage.teams import create_team
from tunepool.celery_factory import make_celery
from tunepool.messages import worker_queue
from tunepool.settings import Settings


@pytest.fixture
def broker(redis_server: RedisServer) -> redis.Redis:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    return client


def _queued(session: Session, team_id: str, worker: str, age_s: float) -> str:
    job = Job(
        team_id=team_id,
        type="finetune",
        task="token-classification",
        spec={},
        state="queued",
        worker_name=worker,
        queued_at=time.time() - age_s,
    )
    session.add(job)
    session.flush()
    return job.id


def test_only_stale_queued_jobs_without_a_message_are_published_again(
    sessions: sessionmaker[Session], redis_server: RedisServer, broker: redis.Redis
) -> None:
    celery = make_celery(Settings(redis_url=redis_server.url))
    publish = celery_publisher(celery)
    with sessions() as session:
        team, _ = create_team(session, "rec")
        lost = _queued(session, team.id, "wX", 60)
        present = _queued(session, team.id, "wX", 60)
        fresh = _queued(session, team.id, "wX", 1)
        session.commit()
        publish(present, worker_queue("wX"), "finetune")
        # A message on the queue carries the job id where the reconciler looks for it.
        assert {job_id_of(m) for m in broker.lrange(worker_queue("wX"), 0, -1)} == {present}

        again = republish_lost(session, redis_messages(broker), publish, grace_s=10)
        assert again == [lost]
        assert {job_id_of(m) for m in broker.lrange(worker_queue("wX"), 0, -1)} == {
            present,
            lost,
        }
        # Now every stale job has its message: nothing more to do (the fresh one is in grace).
        assert republish_lost(session, redis_messages(broker), publish, grace_s=10) == []
        events = session.scalars(select(JobEvent).where(JobEvent.kind == "republished")).all()
        assert [e.job_id for e in events] == [lost]
        assert fresh not in {e.job_id for e in events}
