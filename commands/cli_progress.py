"""``tunepool jobs logs -f``: log lines scrolling above one live progress line.

Two Server-Sent Event streams are followed at once: the job's log (printed as lines)
and its events (state changes, evaluations, and progress, which redraws the bar).
On a terminal the bar is redrawn in place; in a pipe or a file every progress
report is printed as a line of its own, so nothing is lost to carriage returns.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, TextIO

import click

from commands.client import Client, ClientError

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
BAR_WIDTH = 24


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # NaN: no estimate yet
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _bar(done: float) -> str:
    filled = int(done * BAR_WIDTH)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%} "


def progress_line(data: dict[str, Any], epochs: int | None) -> str:
    if "total" in data:  # batch inference: inputs predicted of the dataset's total
        done, total = int(data.get("done") or 0), int(data.get("total") or 0)
        rate = float(data.get("inputs_per_s") or 0)
        return (
            f"{_bar(min(1.0, done / total) if total else 1.0)}{done:,}/{total:,} inputs  "
            f"{rate:,.1f} inputs/s  ETA {_duration(data.get('eta_s'))}"
        )
    epoch = float(data.get("epoch") or 0.0)
    if epochs:
        bar = _bar(min(1.0, epoch / epochs))
        epoch_text = f"epoch {epoch:.2f}/{epochs}"
    else:
        bar, epoch_text = "", f"epoch {epoch:.2f}"
    return (
        f"{bar}step {data.get('step')}  {epoch_text}  loss {float(data.get('loss') or 0):.4f}  "
        f"{float(data.get('tokens_per_s') or 0):,.0f} tok/s  ETA {_duration(data.get('eta_s'))}"
    )


class Screen:
    """Serialises the two streams' output; keeps the bar on the last line of a terminal."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out, self.as_json = out, as_json
        self.live = out.isatty() and not as_json
        self.bar = ""
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            if self.live and self.bar:
                self.out.write("\r\033[K")
            self.out.write(text + "\n")
            if self.live and self.bar:
                self.out.write(self.bar)
            self.out.flush()

    def progress(self, text: str) -> None:
        if not self.live:
            self.line(text)
            return
        with self.lock:
            self.bar = text
            self.out.write("\r\033[K" + text)
            self.out.flush()

    def done(self) -> None:
        with self.lock:
            if self.live and self.bar:
                self.out.write("\n")
                self.bar = ""
            self.out.flush()


def follow_job(api: Client, job_id: str, quiet: bool = False, as_json: bool = False) -> str:
    """Stream until the job is terminal; returns its final state."""
    job = api.get(f"/v1/jobs/{job_id}")
    epochs = (job.get("spec") or {}).get("hyperparameters", {}).get("epochs") or _default_epochs()
    screen = Screen(sys.stdout, as_json)
    if not quiet:
        logs = threading.Thread(target=_print_logs, args=(api, job_id, screen), daemon=True)
        logs.start()
    final = job["state"]
    for kind, data in api.stream(f"/v1/jobs/{job_id}/events"):
        if kind == "end":
            final = data.get("state") or final
            break
        if quiet:
            continue
        if as_json:
            screen.line(json.dumps(data))
        elif kind == "progress":
            screen.progress(progress_line(data.get("data") or {}, epochs))
        elif kind == "state":
            screen.line(
                f"state {data['old_state'] or '-'} -> {data['new_state']}: {data['reason']}"
            )
        elif kind == "evaluation":
            scores = data.get("data") or {}
            shown = " ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))
            screen.line(f"evaluation epoch {scores.get('epoch')}: {shown}")
        elif kind == "checkpoint":
            screen.line(f"checkpoint at step {(data.get('data') or {}).get('step')}")
    if not quiet:
        logs.join(timeout=5)  # the log stream ends by itself once the job is terminal
    screen.done()
    if not quiet:
        colour = "green" if final == "succeeded" else "red"
        click.secho(f"job {job_id} {final}", fg=colour, err=as_json)
    return str(final)


def _print_logs(api: Client, job_id: str, screen: Screen) -> None:
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
