"""``make demo``: the main job end to end on the embedded platform, through the REST API."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import requests

from commands.embedded import Embedded, start_platform
from tunepool.settings import load_settings
from tunepool.synthetic import conll_text

TERMINAL = {"succeeded", "failed", "cancelled"}


class Phases:
    def __init__(self) -> None:
        self.timings: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        click.secho(f"== {name}", bold=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.timings.append((name, elapsed))
            click.echo(f"   ({name}: {elapsed:.1f}s)")


def run_demo(sentences: int = 480, epochs: int = 3) -> int:
    # SIGTERM (a CI timeout, `kill`) must still stop every service: turn it into an exit
    # so that the `finally` below runs instead of orphaning the platform's processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    phases = Phases()
    settings = load_settings()
    platform: Embedded | None = None
    try:
        with phases.phase(
            "start the platform (SQLite, local objects, Redis, API, worker, beat, Flower)"
        ):
            platform = start_platform(settings)
            click.echo(f"   API {platform.api_url}   Flower {platform.flower_url}")
        with phases.phase("create a demo team and its API key"):
            key = demo_key(platform)
            api = ApiClient(platform.api_url, key)
        with phases.phase(
            f"upload a generated NER data set ({sentences} + {sentences // 4} sentences)"
        ):
            # Validation sentences name people, places and companies never seen in training.
            train = api.upload("demo-ner-train", conll_text(sentences, seed=1, split="train"))
            validation = api.upload(
                "demo-ner-validation", conll_text(sentences // 4, seed=2, split="heldout")
            )
            click.echo(f"   train {train['id']}: {_describe(train['stats'])}")
        with phases.phase("fine-tune all-MiniLM-L6-v2 (token classification)"):
            job = api.post(
                "/v1/jobs",
                {
                    "type": "finetune",
                    "task": "token-classification",
                    "base_model": "all-MiniLM-L6-v2",
                    "train_dataset": train["id"],
                    "validation_dataset": validation["id"],
                    "hyperparameters": {"epochs": epochs, "learning_rate": 1e-4, "batch_size": 16},
                    "model_name": "demo-ner",
                },
            )
            click.echo(f"   job {job['id']} {job['state']}")
            job = follow_job(api, job["id"])
        if job["state"] != "succeeded":
            click.secho(f"job ended {job['state']}: {job.get('error')}", fg="red")
            return 1
        _print_reports(job["metrics"])
        return 0
    finally:
        if platform is not None:
            with phases.phase("shut down"):
                platform.stop()
        click.secho("== timings", bold=True)
        for name, elapsed in phases.timings:
            click.echo(f"   {elapsed:7.1f}s  {name}")


def demo_key(platform: Embedded) -> str:
    from sqlalchemy import select

    from storage.db import make_engine, make_session_factory, transaction
    from storage.models import Team
    from storage.teams import create_team, issue_key

    engine = make_engine(platform.settings.resolved_database_url)
    with transaction(make_session_factory(engine)) as session:
        team = session.scalar(select(Team).where(Team.name == "demo"))
        key = (
            issue_key(session, team, "member")
            if team
            else create_team(session, "demo", role="member")[1]
        )
    engine.dispose()
    return key


class ApiClient:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def _check(self, resp: requests.Response) -> Any:
        if resp.status_code >= 400:
            raise click.ClickException(
                f"{resp.request.method} {resp.url}: {resp.status_code} {resp.text}"
            )
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self.http.get(self.base + path, params=params, timeout=30))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._check(self.http.post(self.base + path, json=body, timeout=60))

    def upload(self, name: str, text: str) -> Any:
        files = {"file": (f"{name}.conll", text.encode(), "text/plain")}
        data = {"task": "token-classification", "format": "conll", "name": name}
        return self._check(
            self.http.post(self.base + "/v1/datasets", files=files, data=data, timeout=60)
        )


def _describe(stats: dict[str, Any]) -> str:
    keys = ("sentences", "tokens", "entities")
    return ", ".join(f"{k} {stats[k]}" for k in keys if k in stats)


def follow_job(api: ApiClient, job_id: str, timeout_s: float = 1800) -> Any:
    after = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = api.get(f"/v1/jobs/{job_id}/events", after=after)
        for event in page["data"]:
            click.echo(f"   {_event_line(event)}")
        after = page["next_after"]
        job = api.get(f"/v1/jobs/{job_id}")
        if job["state"] in TERMINAL and not page["data"]:
            return job
        time.sleep(0.5)
    raise click.ClickException(f"job {job_id} did not finish within {timeout_s:.0f}s")


def _event_line(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if event["kind"] == "state":
        return f"[state] {event['old_state'] or '-'} -> {event['new_state']}: {event['reason']}"
    if event["kind"] == "progress":
        eta = data.get("eta_s")
        return (
            f"[train] step {data.get('step')}/{data.get('total_steps')} "
            f"epoch {data.get('epoch')}/{data.get('epochs')} "
            f"loss {float(data.get('loss', 0)):.4f} lr {float(data.get('learning_rate', 0)):.2e} "
            f"{float(data.get('samples_per_s', 0)):.1f} samples/s "
            f"{float(data.get('tokens_per_s', 0)):.0f} tokens/s"
            + (f" eta {float(eta):.0f}s" if eta is not None else "")
        )
    if event["kind"] == "evaluation":
        scores = " ".join(f"{k} {v:.4f}" for k, v in data.items() if isinstance(v, float))
        return f"[eval] after epoch {data.get('epoch')}: {scores}"
    return f"[{event['kind']}] {data}"


def _print_reports(metrics: dict[str, Any]) -> None:
    from commands.reports import format_report

    click.echo(format_report(metrics.get("report") or {}))
