"""Load: 10,000 job submissions from 50 concurrent clients against a running platform.

The API runs under gunicorn with the command line of docker-compose.yml's ``api``
service (read from the file, only the bind address changed) and ``--api-workers``
gunicorn workers (WEB_CONCURRENCY, as compose sets it); ``--api-workers 1,2`` runs the
whole benchmark once per count so the scaling is visible. ``--api-replicas N`` runs N
such gunicorns instead, each on its own port and in its own session, as
``docker compose up --scale api=N`` runs containers; client n talks to replica n mod N, as
a round-robin balancer would spread them (the balancer's own cost is not measured).

On PostgreSQL when one answers on 127.0.0.1:5432 (as in compose) or SQLite (``--db``).
Workers run the no-op engine (``base_model: noop:succeed``, allowed only by
TUNEPOOL_ALLOW_NOOP_ENGINE=1), so what is measured is the platform: authentication,
validation, idempotency, SQL, admission, Celery, claims and leases. A control worker and
beat run as in production.

Every client sends each submission with its own ``Idempotency-Key``; a share of them
(``--retry-rate``) are sent again as if the first answer had been lost, and any
connection error, 409 (first call still running), 429 or 5xx is retried with backoff,
so the retries exercise the replay path under load.

Baseline: the raw ``apply_async`` (``send_task``) rate of the same Celery app on the
same Redis, from the same number of client threads and processes: what publishing a
message costs without a platform around it.

Accounting, after the workers drain the queue: every submission's job id is in SQL
exactly once, no two submissions got the same job, no job ran more than once (one
JobRun each), and each job ended ``succeeded``. ``lost`` counts submissions whose job
is missing or never finished; ``duplicated`` counts extra jobs and extra runs.

With 50 clients that each wait for their answer, throughput and latency are one figure:
the mean latency is clients / submits_per_s (Little's law), so a p99 of 200 ms needs
well over 250 submits/s, and a tail close to the mean. The API's own time per request
(gunicorn's access log, in the format compose configures) is printed beside it, to tell
service time from queueing.

Last line: JSON with submits_per_s, p50_ms, p99_ms, server_p50_ms, server_p99_ms,
raw_celery_per_s, ratio_vs_raw_celery, lost, duplicated and the drain figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from commands.embedded import Embedded, child_env
from commands.netutil import answers, free_port, wait_for_port
from commands.redis_server import start_redis
from storage.db import make_engine, make_session_factory, transaction
from storage.models import Job, JobRun, Worker
from storage.schema import upgrade
from storage.teams import create_team, issue_key
from storage.worker_state import WorkerState
from tunepool.settings import Settings
from tunepool.synthetic import conll_text

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEAMS = 5


def compose_api_argv(port: int) -> list[str]:
    """The API command of docker-compose.yml, bound to a loopback port instead."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    argv = [str(a) for a in compose["services"]["api"]["command"]]
    argv[argv.index("-b") + 1] = f"127.0.0.1:{port}"
    assert argv[0] == "gunicorn"
    return [sys.executable, "-m", "gunicorn", *argv[1:]]


# ---------------------------------------------------------------- clients

# One request's latency (s), the number of the client that sent it, and whether it was a
# deliberate resend of a submission already answered.
Latency = tuple[float, int, bool]


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def _client_thread(
    port: int,
    work: list[tuple[int, str, str]],
    retry_rate: float,
    seed: int,
    out: list[tuple[int, str, float, int]],
    latencies: list[Latency],
    replays: list[int],
) -> None:
    """Submit each (index, key, dataset); record (index, job id, first-answer time, attempts)
    and each request's latency, with this client's number and whether it was a resend."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for index, api_key, dataset in work:
        body = json.dumps(
            {
                "task": "token-classification",
                "train_dataset": dataset,
                "base_model": "noop:succeed",
                "model_name": f"load-{index % 20}",
            }
        ).encode()
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"load-{index}",
        }
        job_id: str | None = None
        attempts, backoff = 0, 0.05
        # A chosen share send the same request again after a good answer, as a client
        # whose answer was lost on the way would: it must get the same job back.
        resend = rng.random() < retry_rate
        while True:
            attempts += 1
            started = time.perf_counter()
            try:
                status, resp_headers, raw = _request(conn, "POST", "/v1/jobs", body, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            latencies.append((time.perf_counter() - started, seed, job_id is not None))
            if status in (409, 429) or status >= 500:
                time.sleep(float(resp_headers.get("retry-after", backoff)))
                backoff = min(backoff * 2, 2.0)
                continue
            if status != 201:
                raise RuntimeError(f"submission {index}: HTTP {status}: {raw[:300]!r}")
            answer = json.loads(raw)["id"]
            if job_id is not None:
                if answer != job_id or resp_headers.get("idempotent-replayed") != "true":
                    raise RuntimeError(f"retry of {index} got {answer}, first got {job_id}")
                replays.append(index)
                break
            job_id = answer
            out.append((index, job_id, time.perf_counter(), attempts))
            if not resend:
                break
    conn.close()


def _client_process(
    ports: list[int],
    work: list[tuple[int, str, str]],
    threads: int,
    retry_rate: float,
    seed: int,
    queue: Any,
) -> None:
    out: list[tuple[int, str, float, int]] = []
    latencies: list[Latency] = []
    replays: list[int] = []
    shares = [work[i::threads] for i in range(threads)]
    pool = [
        threading.Thread(
            target=_client_thread,
            # Client n talks to replica n mod replicas, as a round-robin balancer would
            # spread them.
            args=(
                ports[(seed * threads + i) % len(ports)],
                share,
                retry_rate,
                seed * 1000 + i,
                out,
                latencies,
                replays,
            ),
        )
        for i, share in enumerate(shares)
    ]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put((out, latencies, replays))


def run_clients(
    ports: list[int], work: list[tuple[int, str, str]], clients: int, procs: int, retry_rate: float
) -> tuple[float, list[tuple[int, str, float, int]], list[Latency], list[int]]:
    # Several processes, so that 50 client threads are not all behind one GIL.
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    per_proc = [work[i::procs] for i in range(procs)]
    threads = max(1, clients // procs)
    started = time.perf_counter()
    children = [
        ctx.Process(target=_client_process, args=(ports, share, threads, retry_rate, i, queue))
        for i, share in enumerate(per_proc)
    ]
    for c in children:
        c.start()
    results = [queue.get() for _ in children]
    for c in children:
        c.join()
    elapsed = time.perf_counter() - started
    out = [r for res in results for r in res[0]]
    latencies = [x for res in results for x in res[1]]
    replays = [x for res in results for x in res[2]]
    return elapsed, out, latencies, replays


# ---------------------------------------------------------------- raw Celery baseline


def _raw_publisher(redis_url: str, count: int, threads: int, queue: Any) -> None:
    from tunepool.celery_factory import make_celery

    app = make_celery(Settings.model_validate({"redis_url": redis_url}))

    def publish(n: int) -> None:
        for i in range(n):
            app.send_task("tunepool.load_probe", args=[f"probe-{i}"], queue="tunepool.load_probe")

    pool = [threading.Thread(target=publish, args=(count // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put(count // threads * threads)


def raw_celery_rate(redis_url: str, count: int, clients: int, procs: int) -> float:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    threads = max(1, clients // procs)
    started = time.perf_counter()
    children = [
        ctx.Process(target=_raw_publisher, args=(redis_url, count // procs, threads, queue))
        for _ in range(procs)
    ]
    for c in children:
        c.start()
    sent = sum(queue.get() for _ in children)
    for c in children:
        c.join()
    elapsed = time.perf_counter() - started
    import redis

    redis.Redis.from_url(redis_url).delete("tunepool.load_probe")
    return sent / elapsed


# ---------------------------------------------------------------- where the CPU went


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and all its children, waited-for ones included."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_snapshot(platform: Embedded, redis_pid: int) -> dict[str, float]:
    import psutil

    snap: dict[str, float] = {}
    for name, proc in platform.processes.items():
        # API replicas (api, api-2, ...) are counted as one service.
        service = "api" if name.startswith("api") else name
        snap[service] = snap.get(service, 0.0) + _tree_cpu(proc.pid)
    snap["redis"] = _tree_cpu(redis_pid)
    # The postmaster's tree holds every backend, and exited ones in its children's times:
    # counting each postgres process's own tree as well counted every live backend twice.
    postgres = [p for p in psutil.process_iter(["name", "ppid"]) if p.info["name"] == "postgres"]
    pids = {p.pid for p in postgres}
    snap["postgresql"] = sum(_tree_cpu(p.pid) for p in postgres if p.info["ppid"] not in pids)
    # The client processes have been waited for: their time is in RUSAGE_CHILDREN (the
    # services, still running, are not).
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    snap["clients"] = usage.ru_utime + usage.ru_stime
    return snap


# ---------------------------------------------------------------- setup and accounting


def percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def spread_line(latencies: list[Latency]) -> str:
    """How evenly the API served its clients, and what a resend (the replay path) costs:
    with each client waiting for its answer, a client kept waiting longer than the others
    is where the latency tail comes from."""
    per_client: dict[int, list[float]] = {}
    for seconds, client, _ in latencies:
        per_client.setdefault(client, []).append(seconds)
    means = sorted(1000 * sum(xs) / len(xs) for xs in per_client.values())
    first = sorted(s for s, _, resend in latencies if not resend)
    again = sorted(s for s, _, resend in latencies if resend)
    line = (
        f"per client, mean latency: min {means[0]:.0f} ms, median {percentile(means, 0.5):.0f} "
        f"ms, max {means[-1]:.0f} ms over {len(means)} clients; first sends p50 "
        f"{percentile(first, 0.5) * 1000:.0f} ms, p99 {percentile(first, 0.99) * 1000:.0f} ms"
    )
    if again:
        line += (
            f"; resends p50 {percentile(again, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(again, 0.99) * 1000:.0f} ms"
        )
    return line


def database(kind: str, home: Path) -> tuple[str, str | None]:
    """(url, name of a PostgreSQL database to drop afterwards)."""
    if kind == "auto":
        kind = "postgresql" if answers(5432) else "sqlite"
    if kind == "sqlite":
        return f"sqlite:///{home / 'tunepool.sqlite3'}", None
    name = f"tunepool_load_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}", name


def drop_database(name: str | None) -> None:
    if name is None:
        return
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


SUBMIT_LINE = re.compile(r'"POST /v1/jobs HTTP/[0-9.]+" \d+ .* (\d+)ms$')


def server_times(logs: Path) -> list[int]:
    """gunicorn's time in the app for each POST /v1/jobs (ms), from compose's access log
    format (every replica's log): what a request costs once a thread has it, without the
    wait for one."""
    times: list[int] = []
    for log in logs.glob("api*.log"):
        with log.open(errors="replace") as lines:
            times.extend(int(m.group(1)) for line in lines if (m := SUBMIT_LINE.search(line)))
    return sorted(times)


def upload_dataset(port: int, key: str) -> str:
    boundary = secrets.token_hex(8)
    parts = []
    for name, value in (("task", "token-classification"), ("format", "conll"), ("name", "load")):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="load.conll"\r\n'
        f"Content-Type: text/plain\r\n\r\n{conll_text(20, seed=1)}\r\n--{boundary}--\r\n"
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, _, raw = _request(
        conn,
        "POST",
        "/v1/datasets",
        "".join(parts).encode(),
        {
            "Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    conn.close()
    if status != 201:
        raise RuntimeError(f"dataset upload: HTTP {status}: {raw[:300]!r}")
    return str(json.loads(raw)["id"])


def account(
    engine: Engine, team_ids: list[str], answers: dict[int, str], submitted: int
) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(Job.id, Job.state).where(Job.team_id.in_(team_ids))).all()
        runs = Counter(
            r[0] for r in conn.execute(select(JobRun.job_id).join(Job, Job.id == JobRun.job_id))
        )
    states = dict(rows)
    ids = list(answers.values())
    missing_answer = submitted - len(answers)
    not_in_sql = sum(1 for j in ids if j not in states)
    unfinished = sum(1 for j in ids if j in states and states[j] != "succeeded")
    return {
        "jobs_in_sql": len(states),
        "lost": missing_answer + not_in_sql,
        "unfinished": unfinished,
        # Two submissions answered with one job, or more jobs than submissions.
        "duplicated": (len(ids) - len(set(ids)))
        + max(0, len(states) - len(set(ids)))
        + sum(n - 1 for n in runs.values() if n > 1),
        "jobs_run_twice": sum(1 for n in runs.values() if n > 1),
    }


def wait_for_workers(
    engine: Engine, count: int, platform: Embedded, timeout_s: float = 180
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            alive = conn.execute(
                select(func.count())
                .select_from(Worker)
                .where(Worker.state == WorkerState.ALIVE.value)
            ).scalar_one()
        if alive >= count:
            return
        dead = platform.dead()
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"{alive} of {count} workers registered; dead services: {dead}")
        time.sleep(0.5)


def drained(engine: Engine, team_ids: list[str]) -> int:
    with engine.connect() as conn:
        done = conn.execute(
            select(func.count())
            .select_from(Job)
            .where(Job.team_id.in_(team_ids), Job.state.in_(["succeeded", "failed", "cancelled"]))
        ).scalar_one()
    return int(done)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--client-procs", type=int, default=5)
    parser.add_argument("--retry-rate", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=16, help="slots per no-op worker")
    parser.add_argument("--db", choices=["auto", "sqlite", "postgresql"], default="auto")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--workers-after-submit",
        action="store_true",
        help="start the workers once every job is submitted: drain figures without the burst",
    )
    parser.add_argument(
        "--api-workers",
        default="2",
        help="gunicorn workers of the API; a list (1,2) runs once per count and compares",
    )
    parser.add_argument(
        "--api-replicas",
        default="1",
        help="API services, each its own gunicorn on its own port, as `docker compose up "
        "--scale api=N` runs them; client n talks to replica n mod N, as a round-robin "
        "balancer would spread them. A list (1,2) runs once per count and compares",
    )
    parser.add_argument(
        "--keep-home",
        action="store_true",
        help="keep the run's directory (services' logs, Redis data) instead of deleting it",
    )
    args = parser.parse_args()
    # A benchmark stopped from outside (timeout, Ctrl-C) still stops its services and
    # deletes its directory: the finally below runs on SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    counts = [int(n) for n in str(args.api_workers).split(",")]
    replicas = [int(n) for n in str(args.api_replicas).split(",")]
    if len(counts) > 1 and len(replicas) > 1:
        parser.error("compare --api-workers or --api-replicas, not both")
    if len(counts) > 1:
        return compare_runs("api-workers", counts)
    if len(replicas) > 1:
        return compare_runs("api-replicas", replicas)

    home = Path(tempfile.mkdtemp(prefix="tunepool-load-"))
    url, pg_name = database(args.db, home)
    redis = start_redis(home / "redis")
    settings = Settings.model_validate(
        {
            "home": home,
            "database_url": url,
            "object_store_url": (home / "objects").as_uri(),
            "redis_url": redis.url,
        }
    )
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    keys: list[str] = []
    team_ids: list[str] = []
    with transaction(sessions) as session:
        for t in range(TEAMS):
            team, first = create_team(session, f"load-{t}")
            team_ids.append(team.id)
            keys.append(first)
            for _ in range(args.clients // TEAMS - 1):
                keys.append(issue_key(session, team, "member"))

    # Per-key rate limits stay at their defaults: each client has its own key, and a
    # 429 is answered like any client should, by waiting Retry-After.
    env = child_env(settings, TUNEPOOL_ALLOW_NOOP_ENGINE="1", WEB_CONCURRENCY=str(counts[0]))
    # Redis outlives the services: the raw baseline runs on it after they stop.
    platform = Embedded(settings, env, "", "", None)
    ports: list[int] = []
    while len(ports) < replicas[0]:
        if (port := free_port()) not in ports:
            ports.append(port)
    try:
        for n, port in enumerate(ports):
            platform.start("api" if n == 0 else f"api-{n + 1}", compose_api_argv(port))

        def start_workers() -> None:
            for i in range(args.workers):
                platform.start(
                    f"worker-{i}",
                    [
                        sys.executable,
                        "-m",
                        "commands",
                        "worker",
                        "--slots",
                        str(args.slots),
                        "--name",
                        f"load-w{i}",
                        "--loglevel",
                        "warning",
                    ],
                )

        if not args.workers_after_submit:
            start_workers()
        platform.start(
            "control", [sys.executable, "-m", "commands", "control", "--loglevel", "warning"]
        )
        platform.start("beat", [sys.executable, "-m", "commands", "beat", "--loglevel", "warning"])
        for port in ports:
            wait_for_port(port, 60)
        if not args.workers_after_submit:
            # A running platform: the burst starts once the workers are up and taking
            # jobs, not while they still boot (a niced worker starting beside a saturated
            # API took over 20 s to register, so it ran nothing during the burst).
            wait_for_workers(engine, args.workers, platform)
        datasets = {}
        for k in keys[:: args.clients // TEAMS]:
            datasets[k] = upload_dataset(ports[0], k)
        team_of_key = {}
        per_team = args.clients // TEAMS
        for i, k in enumerate(keys):
            team_of_key[k] = datasets[keys[(i // per_team) * per_team]]
        # Submission i belongs to client i % clients (its own key).
        work = [
            (i, keys[i % len(keys)], team_of_key[keys[i % len(keys)]]) for i in range(args.jobs)
        ]
        print(
            f"load: {args.jobs} submissions, {args.clients} clients in {args.client_procs} "
            f"processes, retry rate {args.retry_rate}, database {url.split(':')[0]}, "
            f"{args.workers} no-op workers x {args.slots} slots; "
            f"{len(ports)} API replica(s) x {counts[0]} gunicorn worker(s): "
            f"{' '.join(compose_api_argv(ports[0])[3:])}",
            flush=True,
        )
        submit_started = time.perf_counter()
        cpu_before = cpu_snapshot(platform, redis.process.pid)
        elapsed, out, latencies, replays = run_clients(
            ports, work, args.clients, args.client_procs, args.retry_rate
        )
        cpu_after = cpu_snapshot(platform, redis.process.pid)
        spent = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
        print(
            f"CPU while submitting ({2 * elapsed:.0f} core-s on 2 cores): "
            + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])),
            flush=True,
        )
        answers = {index: job_id for index, job_id, _, _ in out}
        submits_per_s = len(answers) / elapsed
        lat = sorted(seconds for seconds, _, _ in latencies)
        p50, p99 = percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000
        retried = sum(1 for *_, attempts in out if attempts > 1)
        print(
            f"submit: {len(answers)} accepted in {elapsed:.1f} s = {submits_per_s:.0f}/s; "
            f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {lat[-1] * 1000:.0f} ms over "
            f"{len(lat)} requests; {len(replays)} deliberate resends replayed, "
            f"{retried} submissions needed a retry",
            flush=True,
        )
        print(spread_line(latencies), flush=True)
        in_app = server_times(home / "logs")
        server_p50 = percentile(in_app, 0.5) if in_app else None
        server_p99 = percentile(in_app, 0.99) if in_app else None
        if in_app:
            print(
                f"in the API (gunicorn's request time, {len(in_app)} submits): p50 {server_p50} "
                f"ms, p99 {server_p99} ms. {args.clients} clients at {submits_per_s:.0f}/s "
                f"take {1000 * args.clients / submits_per_s:.0f} ms a request on average "
                "(Little's law): the rest is the wait in the queue for a free worker",
                flush=True,
            )
        done_at_submit_end = drained(engine, team_ids)
        since = "the first submit"
        if args.workers_after_submit:
            # The drain alone: what running a job costs the platform, counted from here.
            since = "the workers' start"
            submit_started = time.perf_counter()
            cpu_before = cpu_snapshot(platform, redis.process.pid)
            start_workers()
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            done = drained(engine, team_ids)
            if done >= len(answers):
                break
            dead = platform.dead()
            if dead:
                raise RuntimeError(f"services died: {dead}; logs in {home / 'logs'}")
            time.sleep(1.0)
        drain_s = time.perf_counter() - submit_started
        finished = drained(engine, team_ids)
        cpu_drained = cpu_snapshot(platform, redis.process.pid)
        per_job = {
            k: (cpu_drained[k] - cpu_before.get(k, 0.0)) * 1000 / max(1, finished)
            for k in cpu_drained
            if k != "clients"
        }
        print(
            f"CPU per job from {since} to the last finish: "
            + ", ".join(
                f"{k} {v:.1f} ms" for k, v in sorted(per_job.items(), key=lambda kv: -kv[1])
            )
            + f"; {sum(per_job.values()):.1f} ms in all",
            flush=True,
        )
        figures = account(engine, team_ids, answers, args.jobs)
        print(
            f"drain: {finished} jobs finished {drain_s:.1f} s after {since} "
            f"({done_at_submit_end} by the end of submitting) = {finished / drain_s:.0f} "
            "jobs/s end to end",
            flush=True,
        )
        platform.stop()
        # After the services stop, so that the baseline has the machine to itself too.
        raw = raw_celery_rate(redis.url, args.jobs, args.clients, args.client_procs)
    finally:
        platform.stop()
        redis.stop()
        engine.dispose()
        drop_database(pg_name)
        if args.keep_home:
            print(f"the run's logs and data are in {home}", flush=True)
        else:
            # Each run leaves tens of MB of logs and data; /tmp is not always large.
            shutil.rmtree(home, ignore_errors=True)
    print(
        f"raw apply_async: {raw:.0f} messages/s from the same {args.clients} threads; "
        f"tunepool submits/s is {submits_per_s / raw:.3f} of that"
    )
    print(
        f"accounting: {figures['jobs_in_sql']} jobs in SQL for {args.jobs} submissions; "
        f"lost {figures['lost']}, duplicated {figures['duplicated']}, unfinished "
        f"{figures['unfinished']}, run twice {figures['jobs_run_twice']}"
    )
    result = {
        "submits_per_s": round(submits_per_s, 1),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "server_p50_ms": server_p50,
        "server_p99_ms": server_p99,
        "raw_celery_per_s": round(raw, 1),
        "ratio_vs_raw_celery": round(submits_per_s / raw, 4),
        "lost": figures["lost"],
        "duplicated": figures["duplicated"],
        "unfinished": figures["unfinished"],
        "drain_jobs_per_s": round(finished / drain_s, 1),
        "jobs": args.jobs,
        "clients": args.clients,
        "database": url.split(":")[0].split("+")[0],
        "api_workers": counts[0],
        "api_replicas": len(ports),
    }
    print(json.dumps(result))
    ok = figures["lost"] == 0 and figures["duplicated"] == 0
    return 0 if ok else 1


def compare_runs(flag: str, counts: list[int]) -> int:
    """The whole benchmark once per count of ``--<flag>`` (API workers or replicas), each
    in a process of its own (a fresh platform and database), then one JSON line with
    every run and the scaling."""
    option = f"--{flag}"
    argv = [a for a in sys.argv[1:] if not a.startswith(f"{option}=")]
    if option in argv:
        at = argv.index(option)
        argv = argv[:at] + argv[at + 2 :]
    what = flag.replace("-", " ")
    runs: dict[str, Any] = {}
    status = 0
    for n in counts:
        print(f"== {n} {what}", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, *argv, option, str(n)],
            stdout=subprocess.PIPE,
            text=True,
        )
        print(done.stdout, end="", flush=True)
        status = status or done.returncode
        runs[str(n)] = json.loads(done.stdout.strip().splitlines()[-1])
    first, last = runs[str(counts[0])], runs[str(counts[-1])]
    scaling = last["submits_per_s"] / first["submits_per_s"]
    print(
        f"scaling: {counts[-1]} {what} give {scaling:.2f}x the submits/s of "
        f"{counts[0]} (p99 {first['p99_ms']} -> {last['p99_ms']} ms)"
    )
    print(json.dumps({f"by_{flag.replace('-', '_')}": runs, "scaling": round(scaling, 3)}))
    return status


if __name__ == "__main__":
    sys.exit(main())
