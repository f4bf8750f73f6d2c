"""What ``tunepool jobs logs -f`` (and ``submit --follow``, ``infer``) shows of a running job.

On a terminal: log lines scroll above one live ``rich`` progress bar, from the first
step to 100 %, with the step, epoch (counted from 1), loss, throughput and an ETA that
counts down between reports. In a pipe or a file every report is a plain line of its
own, so nothing is lost to redraws. At the end, a summary: how long it took, the best
score, and the model it registered.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
BAR_WIDTH = 24


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:  # NaN: no estimate yet
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fraction_done(data: dict[str, Any], epochs: int | None) -> tuple[float, float] | None:
    """(done, total) of a report: inputs for batch inference, optimizer steps for
    training; from epochs for a report without a step total; None if unknown."""
    if "total" in data:
        return float(data.get("done") or 0), float(data.get("total") or 0)
    if data.get("total_steps"):
        return float(data.get("step") or 0), float(data["total_steps"])
    if epochs:
        return float(data.get("epochs_done") or data.get("epoch") or 0), float(epochs)
    return None


def details(data: dict[str, Any], epochs: int | None) -> str:
    """Everything after the bar, for either kind of job."""
    if "total" in data:
        done, total = int(data.get("done") or 0), int(data.get("total") or 0)
        rate = float(data.get("inputs_per_s") or 0)
        return f"{done:,}/{total:,} inputs  {rate:,.1f} inputs/s"
    step = f"step {data.get('step')}"
    if data.get("total_steps"):
        step += f"/{data['total_steps']}"
    total_epochs = data.get("epochs") or epochs
    epoch = f"epoch {data.get('epoch')}" + (f"/{total_epochs}" if total_epochs else "")
    loss = data.get("loss")
    loss_text = f"loss {float(loss):.4f}" if isinstance(loss, int | float) else "loss ?"
    return f"{step}  {epoch}  {loss_text}  {float(data.get('tokens_per_s') or 0):,.0f} tok/s"


def progress_text(data: dict[str, Any], epochs: int | None) -> str:
    """One plain line, e.g. ``[####....]  50% step 9/18  epoch 1/2  loss 0.5  ETA 0:01:06``."""
    share = fraction_done(data, epochs)
    bar = ""
    if share is not None:
        done = min(1.0, share[0] / share[1]) if share[1] else 1.0
        filled = int(done * BAR_WIDTH)
        bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:4.0%} "
    return f"{bar}{details(data, epochs)}  ETA {duration(data.get('eta_s'))}"


class _CountdownEta(ProgressColumn):
    """The job's own ETA (from its smoothed rate), counted down between two reports."""

    def render(self, task: Task) -> Text:
        eta, at = task.fields.get("eta_s"), task.fields.get("received")
        if task.finished:
            return Text("done")
        if eta is None or at is None:
            return Text("ETA ?")
        return Text(f"ETA {duration(max(0.0, float(eta) - (time.monotonic() - at)))}")


class JobView:
    """Serialises the log and event streams' output (two threads) onto one console."""

    def __init__(
        self, out: TextIO | None = None, as_json: bool = False, console: Console | None = None
    ) -> None:
        self.console = console or Console(file=out, highlight=False, soft_wrap=True)
        self.as_json = as_json
        self.live = self.console.is_terminal and not as_json
        self.lock = threading.Lock()
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def line(self, text: str) -> None:
        with self.lock:
            # On a terminal the bar's console prints above the bar.
            console = self.bar.console if self.bar is not None else self.console
            console.print(text, markup=False, highlight=False)

    def progress(self, data: dict[str, Any], epochs: int | None) -> None:
        if not self.live:
            self.line(progress_text(data, epochs))
            return
        share = fraction_done(data, epochs)
        with self.lock:
            if self.bar is None:
                self.bar = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(bar_width=None),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TextColumn("{task.fields[details]}"),
                    _CountdownEta(),
                    console=self.console,
                    expand=True,
                )
                self.bar.start()
                self.task = self.bar.add_task(
                    "infer" if "total" in data else "train", total=None, details="", eta_s=None
                )
            assert self.task is not None
            self.bar.update(
                self.task,
                completed=share[0] if share else 0,
                total=share[1] if share else None,
                details=details(data, epochs),
                eta_s=data.get("eta_s"),
                received=time.monotonic(),
            )
            self.bar.refresh()  # each report drawn as it comes, not at the next tick

    def done(self, final: str) -> None:
        """The bar ends full when the job succeeded (early stopping ends before the last
        planned step), and where it stood otherwise."""
        with self.lock:
            if self.bar is None or self.task is None:
                return
            if final == "succeeded":
                total = self.bar.tasks[0].total or 1
                self.bar.update(self.task, completed=total, total=total)
            self.bar.stop()
            self.bar = None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def summary_lines(job: dict[str, Any], version: int | None = None) -> list[str]:
    """How long it ran (and waited), its best score, and the model it made."""
    started, finished = _moment(job.get("started_at")), _moment(job.get("finished_at"))
    created = _moment(job.get("created_at"))
    took = f"job {job['id']} {job['state']}"
    if started and finished:
        took += f" in {duration((finished - started).total_seconds())}"
        if created:
            took += f" (waited {duration((started - created).total_seconds())} to start)"
    lines = [took]
    metrics = job.get("metrics") or {}
    report = metrics.get("report") or {}
    name = report.get("metric_for_best")
    if name and isinstance(metrics.get(name), int | float):
        best = f"best {name} {metrics[name]:.4f}"
        if report.get("best_epoch") is not None:
            best += f" (epoch {report['best_epoch']})"
        lines.append(best)
    elif "inputs" in metrics:
        lines.append(f"{metrics['inputs']:,} inputs predicted, {metrics.get('inputs_per_s')}/s")
    # Only a job that made a version names one: an inference job's model_name is its input.
    if job.get("model_name") and job.get("model_version_id") and job["state"] == "succeeded":
        ref = f"{job['model_name']}:{version}" if version is not None else job["model_name"]
        lines.append(f"model {ref} ({job.get('model_version_id')})")
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    return lines
