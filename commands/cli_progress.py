"""``tunepool jobs logs -f``: log lines scrolling above one live progress bar.

Two Server-Sent Event streams are followed at once: the job's log (printed as lines)
and its events (state changes, evaluations, and progress, which moves the bar). How it
is drawn, and the summary at the end, is ``commands.job_view``.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from commands.client import Client, ClientError
from commands.job_view import TERMINAL, JobView, progress_text, summary_lines

__all__ = ["TERMINAL", "follow_job", "progress_line"]


def progress_line(data: dict[str, Any], epochs: int | None) -> str:
    return progress_text(data, epochs)


def follow_job(api: Client, job_id: str, quiet: bool = False, as_json: bool = False) -> str:
    """Stream until the job is terminal, then summarise it; returns its final state."""
    job = api.get(f"/v1/jobs/{job_id}")
    epochs = (job.get("spec") or {}).get("hyperparameters", {}).get("epochs") or _default_epochs()
    view = JobView(sys.stdout, as_json)
    if not quiet:
        logs = threading.Thread(target=_print_logs, args=(api, job_id, view), daemon=True)
        logs.start()
    final = job["state"]
    for kind, data in api.stream(f"/v1/jobs/{job_id}/events"):
        if kind == "end":
            final = data.get("state") or final
            break
        if quiet:
            continue
        if as_json:
            view.line(json.dumps(data))
        elif kind == "progress":
            view.progress(data.get("data") or {}, epochs)
        elif kind == "state":
            view.line(f"state {data['old_state'] or '-'} -> {data['new_state']}: {data['reason']}")
        elif kind == "evaluation":
            scores = data.get("data") or {}
            shown = " ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
            view.line(f"evaluation epoch {scores.get('epoch')}: {shown}")
        elif kind == "checkpoint":
            view.line(f"checkpoint at step {(data.get('data') or {}).get('step')}")
    if not quiet:
        logs.join(timeout=5)  # the log stream ends by itself once the job is terminal
    view.done(str(final))
    if not quiet:
        finished = api.get(f"/v1/jobs/{job_id}")
        summary = summary_lines(finished, _model_version(api, finished))
        style = "green" if final == "succeeded" else "red"
        console = JobView(sys.stderr if as_json else sys.stdout).console
        for index, text in enumerate(summary):
            console.print(text, style=style if index == 0 else None, markup=False)
    return str(final)


def _model_version(api: Client, job: dict[str, Any]) -> int | None:
    """The version number of the model the job registered, for ``name:version``."""
    if not job.get("model_version_id") or not job.get("model_name"):
        return None
    try:
        versions = api.get(f"/v1/models/{job['model_name']}/versions")["data"]
    except ClientError:
        return None
    return next((int(v["version"]) for v in versions if v["id"] == job["model_version_id"]), None)


def _print_logs(api: Client, job_id: str, screen: JobView) -> None:
    try:
        for kind, data in api.stream(f"/v1/jobs/{job_id}/logs"):
            if kind == "end":
                return
            for line in data.get("lines", []):
                screen.line(
                    json.dumps(line) if screen.as_json else f"{line['level']:7} {line['message']}"
                )
    except ClientError as exc:
        screen.line(f"(log stream stopped: {exc})")


def _default_epochs() -> int | None:
    try:
        from tunepool.hyperparameters import Hyperparameters

        return int(Hyperparameters().epochs)
    except Exception:
        return None
