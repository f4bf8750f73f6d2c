"""``datasets show`` and ``models show``: one data set, one model's versions.

Read commands like the others in ``commands.cli_client``: a table for people, the API's
own JSON with ``--json``.
"""

from __future__ import annotations

from typing import Any

import click

from commands.cli_client import api_command, emit, table
from commands.client import Client


@click.command("show")
@click.argument("dataset_id")
@api_command
def datasets_show(api: Client, as_json: bool, dataset_id: str) -> None:
    """One data set: task, format, size and what the API counted in it."""
    ds = api.get(f"/v1/datasets/{dataset_id}")

    def lines(d: dict[str, Any]) -> list[str]:
        stats = d.get("stats") or {}
        counted = ", ".join(f"{k} {v}" for k, v in stats.items() if isinstance(v, int | float))
        return [
            f"{d['id']}  {d['name']}  {d['task']} {d['format']}  {d['size']:,} bytes",
            f"uploaded {d['created_at']}  sha256 {d['sha256']}",
            *([f"counted: {counted}"] if counted else []),
        ]

    emit(as_json, ds, lines)


@click.command("show")
@click.argument("name")
@api_command
def models_show(api: Client, as_json: bool, name: str) -> None:
    """A model's versions, newest first, with their aliases and scores."""
    page = api.get(f"/v1/models/{name}/versions")
    rows = [
        [
            v["ref"],
            " ".join(v.get("aliases") or []),
            v["task"],
            v.get("job_id"),
            _score(v.get("metrics") or {}),
            v["created_at"],
        ]
        for v in page["data"]
    ]
    header = ["VERSION", "ALIASES", "TASK", "JOB", "SCORE", "CREATED"]
    emit(as_json, page, lambda _: table(rows, header))


def _score(metrics: dict[str, Any]) -> str:
    for name in ("f1", "accuracy", "perplexity", "loss"):
        if isinstance(metrics.get(name), int | float):
            return f"{name} {metrics[name]:.4f}"
    return ""
