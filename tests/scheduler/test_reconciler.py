"""The reconciler publishes again exactly the queued jobs whose message Redis no longer has."""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from commands.redis_server import RedisServer
from scheduler.dispatch import celery_publisher
from scheduler.reconciler import job_id_of, redis_messages, republish_lost, resend_dataset_checks
from storage.models import Dataset, Job, JobEvent
from storage.teams import create_team
from tunepool.celery_factory import make_celery
from tunepool.messages import CHECK_DATASET_TASK, DATASET_QUEUE, worker_queue
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


def _dataset(session: Session, team_id: str, status: str, age_s: float) -> str:
    dataset = Dataset(
        team_id=team_id, name=f"d{age_s}{status}", task="token-classification", format="conll",
        object_key="k", size=1, sha256="0" * 64, status=status, created_at=time.time() - age_s,
    )  # fmt: skip
    session.add(dataset)
    session.flush()
    return dataset.id


def test_a_dataset_check_whose_message_is_lost_is_sent_again(
    sessions: sessionmaker[Session], redis_server: RedisServer, broker: redis.Redis
) -> None:
    celery = make_celery(Settings(redis_url=redis_server.url))

    def send(dataset_id: str) -> None:
        celery.send_task(CHECK_DATASET_TASK, args=[dataset_id], queue=DATASET_QUEUE)

    def queued_checks() -> set[str | None]:
        raw = broker.lrange(DATASET_QUEUE, 0, -1)
        return {job_id_of(m, {CHECK_DATASET_TASK}) for m in raw}

    with sessions() as session:
        team, _ = create_team(session, "checks")
        lost = _dataset(session, team.id, "validating", 900)
        waiting = _dataset(session, team.id, "validating", 900)
        fresh = _dataset(session, team.id, "validating", 5)
        _dataset(session, team.id, "ready", 900)
        _dataset(session, team.id, "failed", 900)
        session.commit()
        send(waiting)
        find = redis_messages(broker, {CHECK_DATASET_TASK})

        assert resend_dataset_checks(session, find, send, grace_s=300) == [lost]
        assert queued_checks() == {waiting, lost}
        # Every stale check has its message now; the fresh upload is still in its grace.
        assert resend_dataset_checks(session, find, send, grace_s=300) == []
        assert fresh not in queued_checks()
