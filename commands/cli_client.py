"""The API's commands: datasets, jobs, models, predict, pool, teams.

Every command takes ``--json`` (the API's answer, unchanged, for scripts) and
reaches the API as ``commands.client`` resolves it (flags, environment, credentials
file). Errors print the API's own message and exit 1.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from commands.cli_progress import TERMINAL, follow_job, progress_line
from commands.client import Client, ClientError, load_config
from tunepool.data.detect import FORMAT_CHOICES, detect
from tunepool.data.errors import DataError

F = TypeVar("F", bound=Callable[..., Any])


def api_command(view: F) -> F:
    """Adds --api-url, --api-key and --json; passes ``api`` and ``as_json``; readable errors."""

    @click.option("--api-url", envvar="TUNEPOOL_API_URL", help="API address (or TUNEPOOL_API_URL).")
    @click.option("--api-key", envvar="TUNEPOOL_API_KEY", help="Team key (or TUNEPOOL_API_KEY).")
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
    @functools.wraps(view)
    def wrapper(api_url: str | None, api_key: str | None, **kwargs: Any) -> Any:
        try:
            api = Client(load_config(api_url, api_key))
            return view(api=api, **kwargs)
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def emit(as_json: bool, value: Any, lines: Callable[[Any], list[str]]) -> None:
    if as_json:
        click.echo(json.dumps(value, indent=2, sort_keys=True))
    else:
        for line in lines(value):
            click.echo(line)


def table(rows: list[list[Any]], header: list[str]) -> list[str]:
    cells = [header, *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


# -- datasets ------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Upload and list data sets."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Default: the file's name without extension.")
@click.option(
    "--format", "fmt", type=click.Choice(FORMAT_CHOICES), help="Default: read from the content."
)
@click.option("--task", default=None, help="Default: what the content is for.")
@api_command
def datasets_upload(
    api: Client, as_json: bool, path: Path, name: str | None, fmt: str | None, task: str | None
) -> None:
    """Upload CoNLL, CSV, TSV, JSONL, chat JSONL or plain text; the format and task are
    read from the content (tunepool.data.detect), the API checks every line."""
    try:
        found = detect(path, fmt)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from None
    fields = {"task": task or found.task, "format": found.format, "name": name or path.stem}
    ds = api.upload(path, fields)
    stats = ds.get("stats") or {}
    summary = ", ".join(f"{k} {v}" for k, v in stats.items() if isinstance(v, int))
    emit(as_json, ds, lambda d: [f"{d['id']}  {d['name']}  {d['task']} {d['format']}  {summary}"])


@datasets.command("list")
@api_command
def datasets_list(api: Client, as_json: bool) -> None:
    """The team's data sets, newest first."""
    page = api.get("/v1/datasets")
    rows = [[d["id"], d["name"], d["task"], d["format"], d["size"]] for d in page["data"]]
    emit(as_json, page, lambda _: table(rows, ["ID", "NAME", "TASK", "FORMAT", "BYTES"]))


# -- jobs ----------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """Submit, watch and cancel jobs."""


class _SpecLoader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-4`` as a number, as YAML 1.2 and JSON do: PyYAML follows
    YAML 1.1, where a float needs a dot and a signed exponent, so ``learning_rate: 1e-4``
    would reach the API as the string "1e-4"."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load(text: str) -> Any:
    """JSON as JSON, anything else as YAML (with YAML 1.2's floats)."""
    try:
        return json.loads(text)
    except ValueError:
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader: no arbitrary objects


def _spec_from(
    spec_file: Path | None, flags: dict[str, Any], settings: tuple[str, ...]
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if spec_file is not None:
        try:
            loaded = _load(spec_file.read_text())
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"not YAML or JSON: {exc}", param_hint="SPEC") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must hold a mapping of job fields", param_hint="SPEC")
        spec.update(loaded)
    spec.setdefault("type", "finetune")
    hyper = dict(spec.get("hyperparameters") or {})
    for key in (
        "task",
        "train_dataset",
        "validation_dataset",
        "base_model",
        "model_name",
        "priority",
    ):
        if flags.get(key) is not None:
            spec[key] = flags[key]
    for key in ("epochs", "learning_rate", "batch_size"):
        if flags.get(key) is not None:
            hyper[key] = flags[key]
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: use name=value", param_hint="--set")
        hyper[key] = _load(raw)
    if hyper:
        spec["hyperparameters"] = hyper
    if flags.get("gpus"):
        spec["resources"] = {"gpus": flags["gpus"]}
    return spec


@jobs.command("submit")
@click.argument(
    "spec_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--task", help="Default: the training data set's task.")
@click.option("--train", "train_dataset", help="Training data set id.")
@click.option("--validation", "validation_dataset", help="Held-out data set id.")
@click.option("--base-model", help="Model name, hub id or absolute directory.")
@click.option("--model-name", help="Register the result under this model name.")
@click.option("--epochs", type=int)
@click.option("--learning-rate", type=float)
@click.option("--batch-size", type=int)
@click.option("--gpus", type=int)
@click.option("--priority", type=click.Choice(["high", "normal", "low"]))
@click.option("--set", "settings", multiple=True, help="Another hyperparameter: name=value.")
@click.option("--follow", "-f", is_flag=True, help="Then watch it like `jobs logs -f`.")
@api_command
def jobs_submit(
    api: Client,
    as_json: bool,
    spec_file: Path | None,
    settings: tuple[str, ...],
    follow: bool,
    **flags: Any,
) -> None:
    """Submit a job from a YAML/JSON spec file, flags, or both (flags win)."""
    spec = _spec_from(spec_file, flags, settings)
    if not spec.get("train_dataset") and spec["type"] == "finetune":
        raise click.UsageError("name the training data: --train <dataset id> or in the spec file")
    if not spec.get("task") and spec.get("train_dataset"):
        # The data set knows what it is for (detected at upload).
        spec["task"] = api.get(f"/v1/datasets/{spec['train_dataset']}")["task"]
    job = api.post("/v1/jobs", spec)
    emit(as_json, job, lambda j: [f"{j['id']}  {j['state']}  {_why(j)}".rstrip()])
    if follow:
        _exit_with(follow_job(api, job["id"], quiet=as_json))


def _why(job: dict[str, Any]) -> str:
    if job["state"] != "pending":
        return ""
    position = job.get("queue_position")
    where = f" (position {position})" if position else ""
    return f"{job.get('reason') or job.get('reason_code') or ''}{where}"


@jobs.command("list")
@click.option("--state", default=None, help="Only jobs in this state.")
@click.option("--limit", type=int, default=50, show_default=True)
@api_command
def jobs_list(api: Client, as_json: bool, state: str | None, limit: int) -> None:
    """The team's jobs, newest first, with the reason a pending job waits."""
    page = api.get("/v1/jobs", state=state, limit=limit)
    rows = [
        [j["id"], j["type"], j["state"], j.get("worker"), _step(j), _why(j)] for j in page["data"]
    ]
    emit(as_json, page, lambda _: table(rows, ["ID", "TYPE", "STATE", "WORKER", "STEP", "WHY"]))


def _step(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    if "total" in progress:  # batch inference: inputs done
        return f"{progress.get('done')}/{progress['total']}"
    return str(progress.get("step", ""))


@jobs.command("show")
@click.argument("job_id")
@api_command
def jobs_show(api: Client, as_json: bool, job_id: str) -> None:
    """One job: state, reason, progress, metrics."""
    job = api.get(f"/v1/jobs/{job_id}")

    def lines(j: dict[str, Any]) -> list[str]:
        out = [f"{j['id']}  {j['type']} {j['task']}  {j['state']}"]
        if j["state"] == "pending":
            out.append(f"waiting: {_why(j)}; estimated start {j.get('estimated_start')}")
        if j.get("worker"):
            out.append(f"worker: {j['worker']} (attempt {j['attempt']}/{j['max_attempts']})")
        progress = j.get("progress") or {}
        if progress:
            out.append(f"progress: {progress_line(progress, None)}")
        metrics = {k: v for k, v in (j.get("metrics") or {}).items() if isinstance(v, float)}
        if metrics:
            out.append("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
        if j.get("error"):
            out.append(f"error: {j['error']}")
        return out

    emit(as_json, job, lines)


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Stream until the job ends, with progress.")
@api_command
def jobs_logs(api: Client, as_json: bool, job_id: str, follow: bool) -> None:
    """The job's log lines; with -f, live, under a bar (step, epoch, loss, tokens/s, ETA)."""
    if follow:
        _exit_with(follow_job(api, job_id, quiet=False, as_json=as_json))
        return
    after = 0
    while True:
        page = api.get(f"/v1/jobs/{job_id}/logs", after=after, limit=1000)
        for batch in page["data"]:
            for line in batch["lines"]:
                click.echo(json.dumps(line) if as_json else f"{line['level']:7} {line['message']}")
        if page["next_after"] == after:
            return
        after = page["next_after"]


def _exit_with(state: str) -> None:
    if state != "succeeded":
        raise SystemExit(1)


@jobs.command("cancel")
@click.argument("job_id")
@api_command
def jobs_cancel(api: Client, as_json: bool, job_id: str) -> None:
    """Cancel a job: at once if it never started, else after the runner checkpoints."""
    job = api.post(f"/v1/jobs/{job_id}/cancel")
    emit(as_json, job, lambda j: [f"{j['id']}  {j['state']}"])


# -- models, predictions, pool, team -------------------------------------------------


@click.group()
def models() -> None:
    """The team's model registry."""


@models.command("list")
@api_command
def models_list(api: Client, as_json: bool) -> None:
    """Models with their newest version and aliases."""
    page = api.get("/v1/models")
    # The team's registry: the list also holds the platform's base models (OpenAI's list).
    page = {**page, "data": [m for m in page["data"] if m.get("kind") != "base"]}
    rows = [
        [
            m["name"],
            m["task"],
            m["latest_version"],
            " ".join(f"{a}->{v}" for a, v in sorted(m["aliases"].items())),
        ]
        for m in page["data"]
    ]
    emit(as_json, page, lambda _: table(rows, ["NAME", "TASK", "LATEST", "ALIASES"]))


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", default="", help="Kept in the alias history.")
@api_command
def models_promote(
    api: Client, as_json: bool, name: str, version: int, alias: str, reason: str
) -> None:
    """Point an alias (default: production) at a version."""
    answer = api.put(f"/v1/models/{name}/aliases/{alias}", {"version": version, "reason": reason})
    emit(as_json, answer, lambda _: [f"{name}@{alias} -> version {version}"])


@click.command()
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@api_command
def predict(api: Client, as_json: bool, model: str, texts: tuple[str, ...]) -> None:
    """Predict with MODEL (name@alias, name:version or name) for each TEXT."""
    answer = api.post(f"/v1/models/{model}/predict", {"inputs": list(texts)})

    def lines(a: dict[str, Any]) -> list[str]:
        out = []
        for text, prediction in zip(texts, a["predictions"], strict=False):
            out.append(f"{text}\n  {json.dumps(prediction)}")
        return out

    emit(as_json, answer, lines)


@click.command()
@api_command
def pool(api: Client, as_json: bool) -> None:
    """Workers, their slots, and who runs where."""
    answer = api.get("/v1/pool")

    def lines(p: dict[str, Any]) -> list[str]:
        rows = []
        for w in p["workers"]:
            running = ", ".join(
                f"{j['team']}:{j['job'] or '(other team)'}x{j['slots']}" for j in w["jobs"]
            )
            rows.append([w["name"], w["state"], f"{w['free_slots']}/{w['slots']}", running])
        cap = p["capacity"]
        return [
            *table(rows, ["WORKER", "STATE", "FREE", "JOBS"]),
            f"free {cap['free_slots']} of {cap['slots']} slots; {p['pending_jobs']} jobs pending",
        ]

    emit(as_json, answer, lines)


@click.group()
def teams() -> None:
    """Your team."""


@teams.command("me")
@api_command
def teams_me(api: Client, as_json: bool) -> None:
    """The team of the key: quota, usage, jobs."""
    team = api.get("/v1/teams/me")

    def lines(t: dict[str, Any]) -> list[str]:
        usage, quota, counts = t["usage"], t["quota"], t["jobs"]
        return [
            f"{t['name']} ({t['id']})  weight {t['weight']}  queue {t['queue_state']}",
            f"GPUs in use {usage['gpus_in_use']} of {quota['max_gpus'] or 'unlimited'}; "
            + _gpu_hours(usage, quota),
            f"jobs: {counts['running']} running, {counts['queued']} queued, "
            f"{counts['pending']} pending",
        ]

    emit(as_json, team, lines)


def _gpu_hours(usage: dict[str, Any], quota: dict[str, Any]) -> str:
    # No budget is not an empty one: "no budget left" told teams without one they were out.
    if quota.get("gpu_hours_budget") is None:
        return f"GPU-hours {usage['gpu_hours']} used (no GPU-hour budget set)"
    return (
        f"GPU-hours {usage['gpu_hours']} used of a budget of {quota['gpu_hours_budget']}, "
        f"{usage['gpu_hours_left']} left"
    )


COMMANDS = (datasets, jobs, models, predict, pool, teams)
__all__ = ["COMMANDS", "TERMINAL"]
