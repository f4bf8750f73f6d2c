"""``tunepool infer MODEL DATASET``: batch inference with a live bar and the output file.

DATASET is a data set id or a local file, uploaded first (its task and format read
from the content, as ``datasets upload`` does). The job is watched like a fine-tune
(``jobs logs -f``); once it succeeds its predictions (``GET /v1/jobs/<id>/output``,
JSONL) are saved, one line per input in the data set's order.
"""

from __future__ import annotations

from pathlib import Path

import click

from commands.cli_client import api_command, emit
from commands.cli_progress import follow_job
from commands.client import Client
from tunepool.data.detect import detect
from tunepool.data.errors import DataError


@click.command()
@click.argument("model")
@click.argument("dataset")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the predictions go (default: <job id>-predictions.jsonl here).",
)
@click.option("--batch-size", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option("--priority", type=click.Choice(["high", "normal", "low"]), default="normal")
@api_command
def infer(
    api: Client,
    as_json: bool,
    model: str,
    dataset: str,
    output: Path | None,
    batch_size: int,
    priority: str,
) -> None:
    """Predict with MODEL (name@alias, name:version or name) for every input of DATASET
    (a data set id or a file to upload), then download the predictions."""
    dataset_id = _dataset_id(api, dataset, as_json)
    body = {
        "type": "inference",
        "model": model,
        "dataset": dataset_id,
        "batch_size": batch_size,
        "priority": priority,
    }
    job = api.post("/v1/jobs", body)
    if not as_json:
        click.echo(f"{job['id']}  {job['state']}  {model} on {dataset_id}")
    final = follow_job(api, job["id"], quiet=as_json)
    finished = api.get(f"/v1/jobs/{job['id']}")
    if final != "succeeded":
        emit(as_json, finished, lambda _: [])
        raise SystemExit(1)
    dest = output or Path(f"{job['id']}-predictions.jsonl")
    size = api.download(f"/v1/jobs/{job['id']}/output", dest)
    finished["output_file"] = str(dest)
    emit(as_json, finished, lambda j: [f"predictions: {dest} ({size:,} bytes)"])


def _dataset_id(api: Client, dataset: str, quiet: bool) -> str:
    path = Path(dataset)
    if not path.is_file():
        return dataset  # an id: the API says if there is no such data set
    try:
        found = detect(path)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="DATASET") from None
    ds = api.upload(path, {"task": found.task, "format": found.format, "name": path.stem})
    if not quiet:
        click.echo(f"uploaded {path} as {ds['id']} ({found.task} {found.format})")
    return str(ds["id"])


__all__ = ["infer"]
