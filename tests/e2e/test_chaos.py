"""Faults with real processes: every job ends once, no two runners overlap, checksums hold.

The short set runs in ``make test``; ``make soak`` (``--soak``) repeats the trials and
lengthens the outages, and prints one JSON line of figures per test. Redis restarted
empty and a single SIGKILL are in test_redis_restart.py and test_training_job.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import OperationalError

from api.app import create_app
from commands.embedded import child_env
from commands.redis_server import RedisServer
from scheduler.ticks import run_reaper
from storage.db import transaction
from storage.models import Checkpoint, Job, JobEvent
from storage.platform import Platform
from storage.schema import upgrade
from storage.teams import create_team
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.invariants import assert_invariants, runs_of
from tests.e2e.tcp_proxy import TcpProxy
from tests.e2e.test_training_job import api, job_state, tiny_model, upload
from tunepool.settings import Settings

pytestmark = pytest.mark.chaos
__all__ = ["tiny_model"]  # the module-scoped fixture, shared with the training e2e tests

FINISHED = ("succeeded", "failed", "cancelled")


def figures(name: str, **values: object) -> None:
    """The soak's numbers, one JSON line per test (pytest -s shows them)."""
    print(json.dumps({"chaos": name, **values}))


def submit(client: FlaskClient, headers: dict[str, str], body: dict[str, object]) -> str:
    resp = client.post("/v1/jobs", headers=headers, json={"task": "token-classification", **body})
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])


def train_job(
    client: FlaskClient, headers: dict[str, str], model: str, train: str, **hyper: object
) -> str:
    return submit(
        client,
        headers,
        {
            "base_model": model,
            "train_dataset": train,
            "hyperparameters": {
                "epochs": 2,
                "batch_size": 8,
                "learning_rate": 1e-3,
                "log_every_steps": 1,
                **hyper,
            },
        },
    )


def noop_job(
    client: FlaskClient, headers: dict[str, str], train: str, behaviour: str, **kw: object
) -> str:
    return submit(
        client, headers, {"base_model": f"noop:{behaviour}", "train_dataset": train, **kw}
    )


def step_of(live: WorkerProcs, job_id: str) -> int:
    return int((job_state(live, job_id).progress or {}).get("step") or 0)


def reaper_every(live: WorkerProcs, period_s: float) -> Callable[[], None]:
    """A reaper tick for a fast wait loop, run at most once a period (as beat would)."""
    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] >= period_s:
            last[0] = time.monotonic()
            try:
                run_reaper(live.platform)
            except OperationalError as exc:
                # SQLite answers "database is locked" while a worker's write outlasts the
                # busy timeout; a beat tick that fails is simply run again next period.
                if "database is locked" not in str(exc):
                    raise

    return tick


def finish(live: WorkerProcs, jobs: list[str], timeout_s: float = 300) -> None:
    wait_until(
        lambda: all(job_state(live, j).state in FINISHED for j in jobs),
        timeout_s,
        f"jobs {jobs} to finish",
        every_s=0.5,
        on_tick=lambda: run_reaper(live.platform),
    )


# -- SIGKILL at a random step -----------------------------------------------------------


def test_sigkill_at_a_random_step_loses_at_most_one_checkpoint_interval(
    live: WorkerProcs, tiny_model: str, soak: bool
) -> None:
    trials = 20 if soak else 1
    every = 8
    live.env.update(TUNEPOOL_LEASE_TTL_S="4")
    client, headers = api(live)
    train = upload(client, headers, 160, 1)
    rng = random.Random(8)
    lost_steps: list[int] = []
    jobs: dict[str, str] = {}
    for trial in range(trials):
        live.start(f"k{trial}")
        job_id = train_job(client, headers, tiny_model, train, checkpoint_every_steps=every)
        jobs[job_id] = "succeeded"
        kill_at = rng.randint(3, 34)  # 20 steps an epoch, 40 in all
        wait_until(
            lambda j=job_id, k=kill_at: (
                step_of(live, j) >= k or job_state(live, j).state in FINISHED
            ),
            180,
            f"trial {trial}: step {kill_at}",
            every_s=0.05,
            on_tick=reaper_every(live, 1.0),
        )
        killed_at = step_of(live, job_id)
        live.kill(f"k{trial}")
        live.start(f"r{trial}")
        finish(live, [job_id])
        runs = runs_of(live.platform, job_id)
        if len(runs) > 1:
            lost_steps.append(killed_at - runs[-1].start_step)
            assert runs[-1].start_step <= killed_at
            assert killed_at - runs[-1].start_step <= every + 1, "lost more than one interval"
        live.kill(f"r{trial}", signal.SIGTERM)  # a clean exit retires it: no placement there
    assert_invariants(live.platform, jobs)
    figures(
        "sigkill_random_step",
        trials=trials,
        resumed=len(lost_steps),
        lost=0,
        duplicated=0,
        max_steps_lost=max(lost_steps, default=0),
    )


# -- SIGTERM: checkpoint, release, resume ----------------------------------------------


@pytest.mark.parametrize("target", ["parent", "group"])
def test_sigterm_checkpoints_releases_the_lease_and_the_job_resumes(
    live: WorkerProcs, tiny_model: str, soak: bool, target: str
) -> None:
    if target == "group" and not soak:
        pytest.skip("the process-group variant runs in the soak")
    client, headers = api(live)
    train = upload(client, headers, 240, 1)
    proc = live.start("wA")
    # No periodic checkpoints: the only one before the end is the stop's own.
    job_id = train_job(client, headers, tiny_model, train, checkpoint_every_steps=0, epochs=1)
    wait_until(lambda: step_of(live, job_id) >= 5, 180, "training to reach step 5", every_s=0.05)
    termed_at = step_of(live, job_id)
    if target == "parent":
        proc.send_signal(signal.SIGTERM)  # what `docker stop` does: PID 1 only
    else:
        os.killpg(proc.pid, signal.SIGTERM)  # what systemd does: the whole group
    # No reaper runs here: only the worker itself can give the job back this fast.
    wait_until(lambda: job_state(live, job_id).state == "pending", 60, "the job to be given back")
    assert proc.wait(60) == 0, live.log("wA")[-3000:]
    job = job_state(live, job_id)
    assert job.lease_owner is None and job.worker_name is None
    with live.platform.sessions() as session:
        given_back = session.scalar(
            select(JobEvent.reason)
            .where(JobEvent.job_id == job_id, JobEvent.new_state == "pending")
            .order_by(JobEvent.id.desc())
        )
    assert given_back and "shutting down" in given_back
    (run,) = runs_of(live.platform, job_id)
    assert run.outcome == "shutdown" and run.ended_at is not None
    with live.platform.sessions() as session:
        saved = session.scalar(select(func.max(Checkpoint.step)).where(Checkpoint.job_id == job_id))
    assert saved is not None and saved >= termed_at

    live.start("wB")
    finish(live, [job_id])
    assert_invariants(live.platform, {job_id: "succeeded"})
    _, second = runs_of(live.platform, job_id)
    assert second.start_step == saved, "the resumed run did not start at the stop checkpoint"
    figures("sigterm", target=target, stopped_at=termed_at, checkpoint=saved, steps_lost=0)


# -- Broker connections killed mid-task --------------------------------------------------


def test_broker_connections_killed_mid_task_run_each_job_once(
    live: WorkerProcs, redis_server: RedisServer, soak: bool
) -> None:
    live.allow_noop_engine()
    client, headers = api(live)
    train = upload(client, headers, 20, 1)
    live.start("wA")
    rounds = 30 if soak else 6
    long_job = noop_job(client, headers, train, f"sleep={rounds * 0.5 + 2}")
    wait_until(lambda: job_state(live, long_job).state == "running", 60, "the job to run")
    admin = redis.Redis.from_url(redis_server.url)
    killed = 0
    for _ in range(rounds):
        killed += int(admin.client_kill_filter(_type="normal"))
        killed += int(admin.client_kill_filter(_type="pubsub"))
        time.sleep(0.5)
    assert killed > 0
    # The worker reconnected: a job submitted after the storm runs too.
    after = noop_job(client, headers, train, "succeed")
    finish(live, [long_job, after], timeout_s=120)
    assert_invariants(live.platform, {long_job: "succeeded", after: "succeeded"})
    assert [len(runs_of(live.platform, j)) for j in (long_job, after)] == [1, 1]
    figures("broker_client_kill", connections_killed=killed, runs=2, duplicated=0)


# -- A poison job ------------------------------------------------------------------------


def test_a_poison_job_fails_after_max_attempts_without_blocking_the_queue(
    live: WorkerProcs,
) -> None:
    # Short leases: each death is noticed within seconds.
    live.allow_noop_engine()
    live.env.update(TUNEPOOL_LEASE_TTL_S="2")
    client, headers = api(live)
    train = upload(client, headers, 20, 1)
    live.start("wA")
    poison = noop_job(client, headers, train, "exit", max_attempts=2)
    healthy = [noop_job(client, headers, train, "succeed") for _ in range(2)]
    finish(live, [poison, *healthy], timeout_s=120)
    assert_invariants(live.platform, {poison: "failed", **{j: "succeeded" for j in healthy}})
    job = job_state(live, poison)
    assert job.attempt == 2 and job.error
    with live.platform.sessions() as session:
        reason = session.scalar(
            select(JobEvent.reason).where(JobEvent.job_id == poison, JobEvent.new_state == "failed")
        )
    assert reason and "gave up after 2 attempts (max_attempts=2)" in reason
    assert [r.outcome for r in runs_of(live.platform, poison)] == ["lease_expired"] * 2
    assert "exitcode 70" in live.log("wA")  # Celery saw the process die


# -- S3 unreachable during checkpoint upload ---------------------------------------------


@pytest.fixture
def s3_live(
    tmp_path: Path, redis_server: RedisServer, s3_server: str, tiny_base_models: dict[str, str]
) -> Iterator[tuple[WorkerProcs, TcpProxy]]:
    host, port = s3_server.split(":")
    with TcpProxy(host, int(port)) as proxy:
        # retry_total_s: an upload keeps retrying (with backoff) through a 30 s outage.
        url = f"s3://chaos?endpoint=127.0.0.1:{proxy.port}&secure=false&retry_total_s=60"
        tuning = {"lease_ttl_s": 60.0, "lease_renew_s": 0.5, "worker_heartbeat_s": 1.0}
        settings = Settings(
            home=tmp_path / "home",
            database_url=f"sqlite:///{tmp_path / 'tunepool.sqlite3'}",
            object_store_url=url,
            s3_access_key="testing",
            s3_secret_key="testing",
            redis_url=redis_server.url,
            base_models=tiny_base_models,
            **tuning,  # type: ignore[arg-type]
        )
        platform = Platform(settings)
        upgrade(platform.engine)
        env = child_env(
            settings,
            TUNEPOOL_S3_ACCESS_KEY="testing",
            TUNEPOOL_S3_SECRET_KEY="testing",
            **{f"TUNEPOOL_{k.upper()}": str(v) for k, v in tuning.items()},
        )
        redis.Redis.from_url(redis_server.url).flushall()
        procs = WorkerProcs(platform, env, tmp_path)
        yield procs, proxy
        procs.stop_all()
        platform.close()


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def test_s3_unreachable_during_checkpoint_upload_is_retried_and_the_job_continues(
    s3_live: tuple[WorkerProcs, TcpProxy], tiny_model: str, soak: bool
) -> None:
    live, proxy = s3_live
    outage_s = 30.0 if soak else 6.0
    client, headers = api(live)
    train = upload(client, headers, 240, 1)
    live.start("wA")
    job_id = train_job(client, headers, tiny_model, train, checkpoint_every_steps=10, epochs=1)
    wait_until(lambda: step_of(live, job_id) >= 2, 180, "step 2", every_s=0.05)
    proxy.cut()  # the checkpoint at step 10 is uploaded into the outage
    # The outage lasts outage_s from the first refused upload, however long the run takes
    # to reach step 10 (cutting at a fixed step raced the upload on a loaded machine).
    wait_until(lambda: proxy.refused > 0, 180, "the step-10 checkpoint upload", every_s=0.1)
    refused_at = time.monotonic()
    while time.monotonic() - refused_at < outage_s:
        run_reaper(live.platform)  # the reaper runs as usual: the lease must not lapse
        time.sleep(0.5)
    step_after_outage = step_of(live, job_id)
    proxy.restore()
    finish(live, [job_id])
    assert proxy.refused > 0, "nothing tried to reach S3 during the outage"
    assert step_after_outage <= 11, "training went on without its checkpoint"
    assert_invariants(live.platform, {job_id: "succeeded"})
    assert len(runs_of(live.platform, job_id)) == 1, "the outage cost the run its lease"
    # No partial object: the store holds exactly the objects SQL recorded, all verified.
    with live.platform.sessions() as session:
        from storage.models import StoredObject

        recorded = set(session.scalars(select(StoredObject.key)))
    assert {o.key for o in live.platform.store.list("")} == recorded
    figures("s3_outage", outage_s=outage_s, refused_connections=proxy.refused, runs=1)


# -- The database briefly unavailable ----------------------------------------------------


@pytest.mark.postgres
def test_database_unavailable_answers_503_with_retry_after_and_writes_nothing(
    tmp_path: Path, redis_server: RedisServer, database_url_postgres: str
) -> None:
    name = database_url_postgres.rsplit("/", 1)[1]
    with TcpProxy("127.0.0.1", 5432) as proxy:
        settings = Settings(
            home=tmp_path / "home",
            database_url=f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{name}",
            object_store_url=(tmp_path / "objects").as_uri(),
            redis_url=redis_server.url,
            # The admission pass runs in the request, after the job's commit (step 3).
            admission_coalesce_s=0,
            # Short, so that step 3 waits briefly for the server to end step 2's orphan.
            api_sql_idle_in_transaction_timeout_s=2,
        )
        platform = Platform(settings, for_api=True)
        upgrade(platform.engine)
        client = create_app(platform=platform).test_client()
        with transaction(platform.sessions) as session:
            _, key = create_team(session, "dbdown", role="member")
        headers = {"Authorization": f"Bearer {key}"}
        train = _upload(client, headers)
        # An allow-listed base model: the submit writes the job without reading a model.
        body = {"task": "token-classification", "train_dataset": train, "base_model": "minilm"}

        def counts() -> tuple[int, int]:
            with platform.sessions() as session:
                return (
                    int(session.scalar(select(func.count()).select_from(Job)) or 0),
                    int(session.scalar(select(func.count()).select_from(JobEvent)) or 0),
                )

        # 1. The database is gone before the request.
        proxy.cut()
        for method, path in (("post", "/v1/jobs"), ("get", "/v1/jobs")):
            resp = getattr(client, method)(path, headers=headers, json=body)
            assert resp.status_code == 503, resp.get_data(as_text=True)
            assert resp.headers["Retry-After"].isdigit()
            assert resp.get_json()["error"]["code"] == "unavailable"
        proxy.restore()
        assert counts() == (0, 0)

        # 2. The connection dies as the job's row is sent, inside the transaction that also
        #    holds the key's reservation: the job, its event, the audit row and the key's
        #    answer are all written, or none. (The server may not see the cut, as after a
        #    dropped route: it ends the orphaned transaction, and frees the reservation,
        #    once it has been idle api_sql_idle_in_transaction_timeout_s.)
        keyed = {**headers, "Idempotency-Key": "dbdown-1"}

        def cut_at_job(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
            if statement.startswith("INSERT INTO jobs"):
                proxy.cut()

        event.listen(platform.engine, "before_cursor_execute", cut_at_job)
        resp = client.post("/v1/jobs", headers=keyed, json=body)
        event.remove(platform.engine, "before_cursor_execute", cut_at_job)
        proxy.restore()
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert "Retry-After" in resp.headers
        assert counts() == (0, 0), "a half-written job survived the failed statement"

        # 3. It dies once the job has committed, before the answer: the client sees 503
        #    (the admission pass that follows fails), and its retry with the same key gets
        #    that job, once.
        def cut_after_commit(_session: object) -> None:
            proxy.cut()

        event.listen(platform.sessions, "after_commit", cut_after_commit)
        lost = client.post("/v1/jobs", headers=keyed, json=body)
        event.remove(platform.sessions, "after_commit", cut_after_commit)
        proxy.restore()
        assert lost.status_code == 503, lost.get_data(as_text=True)
        assert counts() == (1, 1)
        resp = client.post("/v1/jobs", headers=keyed, json=body)
        assert resp.status_code == 201, resp.get_json()
        assert resp.headers["Idempotent-Replayed"] == "true"
        assert counts() == (1, 1)
        platform.close()


def _upload(client: FlaskClient, headers: dict[str, str]) -> str:
    import io

    from tunepool.synthetic import conll_text

    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={
            "task": "token-classification",
            "format": "conll",
            "name": "ner",
            "file": (io.BytesIO(conll_text(20, seed=1).encode()), "ner.conll"),
        },
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.get_json()["id"])
