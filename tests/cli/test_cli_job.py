"""The CLI drives a whole job in subprocesses against a live API and a real worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from commands.redis_server import RedisServer, start_redis
from tests.cli.conftest import LiveApi
from tunepool.synthetic import conll_text


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the session's serving worker (tests/conftest.py), on
    the session's Redis, reads another object store and must not take `predict`'s request
    (it answered 503, object not found, when it did)."""
    server = start_redis(tmp_path_factory.mktemp("redis-cli-job"), persist=False)
    yield server
    server.stop()


def cli(
    live_api: LiveApi, tmp_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TUNEPOOL_HOME": str(tmp_path / "cli-home"),  # no stray credentials file
        "TUNEPOOL_API_URL": live_api.url,
        "TUNEPOOL_API_KEY": live_api.key,
    }
    return subprocess.run(
        [sys.executable, "-m", "commands", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr + result.stdout
    return dict(json.loads(result.stdout))


def test_the_cli_drives_a_full_job(live_api: LiveApi, tiny_model: str, tmp_path: Path) -> None:
    live_api.workers.start("wA")
    live_api.workers.start_serving()  # for `tunepool predict`, at the end
    train, validation = tmp_path / "train.conll", tmp_path / "validation.conll"
    train.write_text(conll_text(120, seed=1))
    validation.write_text(conll_text(30, seed=2))
    train_ds = ok_json(cli(live_api, tmp_path, "datasets", "upload", str(train), "--json"))
    val_ds = ok_json(cli(live_api, tmp_path, "datasets", "upload", str(validation), "--json"))
    assert train_ds["name"] == "train" and train_ds["stats"]["sentences"] == 120
    assert (train_ds["task"], train_ds["format"]) == ("token-classification", "conll")
    # Read from the content, not the name: a CSV with a label column is classification.
    spam = tmp_path / "spam.data"
    spam.write_text("text,label\nwin money now,spam\nsee you at 6,ham\n")
    spam_ds = ok_json(cli(live_api, tmp_path, "datasets", "upload", str(spam), "--json"))
    assert (spam_ds["task"], spam_ds["format"]) == ("sequence-classification", "csv")
    # Without --task a job takes its training data's task; --task says otherwise.
    check = tmp_path / "check.yaml"
    check.write_text(yaml.safe_dump({"base_model": tiny_model, "validate_only": True}))
    derived = cli(
        live_api, tmp_path, "jobs", "submit", str(check), "--train", spam_ds["id"], "--json"
    )
    assert ok_json(derived)["valid"] is True
    told = cli(
        live_api, tmp_path, "jobs", "submit", str(check), "--train", spam_ds["id"],
        "--task", "token-classification", "--json",
    )  # fmt: skip
    assert told.returncode == 1 and "task" in told.stderr

    spec = tmp_path / "job.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "task": "token-classification",
                "base_model": tiny_model,
                "train_dataset": train_ds["id"],
                "validation_dataset": val_ds["id"],
                "model_name": "cli-ner",
                "hyperparameters": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3},
            }
        )
    )
    # Flags override the file.
    job = ok_json(cli(live_api, tmp_path, "jobs", "submit", str(spec), "--epochs", "2", "--json"))
    job_id = job["id"]
    assert job["spec"]["hyperparameters"]["epochs"] == 2

    follow = cli(live_api, tmp_path, "jobs", "logs", job_id, "-f", timeout=240)
    out = follow.stdout
    assert follow.returncode == 0, follow.stderr + out
    assert "state queued -> running" in out and "-> succeeded" in out
    progress = [ln for ln in out.splitlines() if "tok/s" in ln]
    assert progress and all("ETA" in ln and "loss" in ln and "epoch" in ln for ln in progress)
    # A bar from the first step, epochs counted from 1, and full at the last step.
    assert re.search(r"\]\s+\d+% step 1/\d+  epoch 1/2 ", progress[0]), progress[0]
    assert "100% step" in progress[-1] and "epoch 2/2" in progress[-1], progress[-1]
    assert "evaluation epoch 1" in out and "evaluation epoch 2" in out
    assert "attempt 1 claimed by wA" in out  # a log line from the worker's process
    # The summary: how long, the best score, the model registered.
    assert re.search(rf"job {job_id} succeeded in \d+:\d\d:\d\d \(waited", out), out[-500:]
    assert re.search(r"best f1 \d\.\d{4} \(epoch [12]\)", out)
    assert "model cli-ner:1 (" in out

    shown = ok_json(cli(live_api, tmp_path, "jobs", "show", job_id, "--json"))
    assert shown["state"] == "succeeded" and shown["metrics"]["report"]
    listed = cli(live_api, tmp_path, "jobs", "list")
    assert job_id in listed.stdout and "succeeded" in listed.stdout
    logs = cli(live_api, tmp_path, "jobs", "logs", job_id)
    assert "claimed by wA" in logs.stdout and "loss" in logs.stdout

    models = ok_json(cli(live_api, tmp_path, "models", "list", "--json"))
    assert [m["name"] for m in models["data"]] == ["cli-ner"]
    promoted = cli(live_api, tmp_path, "models", "promote", "cli-ner", "1")
    assert promoted.returncode == 0 and "cli-ner@production -> version 1" in promoted.stdout
    predicted = ok_json(
        cli(live_api, tmp_path, "predict", "cli-ner@production", "John lives in Paris", "--json")
    )
    assert len(predicted["predictions"]) == 1

    # Batch inference from a local file: uploaded, a bar over its inputs, the output saved.
    saved = tmp_path / "predictions.jsonl"
    inferred = cli(
        live_api, tmp_path, "infer", "cli-ner@production", str(validation), "-o", str(saved),
        timeout=240,
    )  # fmt: skip
    assert inferred.returncode == 0, inferred.stderr + inferred.stdout
    assert "(token-classification conll)" in inferred.stdout
    assert "30/30 inputs" in inferred.stdout and f"predictions: {saved}" in inferred.stdout
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(30)) and "labels" in lines[0]
    shown_ds = ok_json(cli(live_api, tmp_path, "datasets", "show", val_ds["id"], "--json"))
    assert shown_ds["id"] == val_ds["id"] and shown_ds["created_at"].endswith("Z")
    versions = ok_json(cli(live_api, tmp_path, "models", "show", "cli-ner", "--json"))
    assert [v["ref"] for v in versions["data"]] == ["cli-ner:1"]

    pool = ok_json(cli(live_api, tmp_path, "pool", "--json"))
    assert [w["name"] for w in pool["workers"]] == ["wA"]
    me = cli(live_api, tmp_path, "teams", "me")
    assert me.returncode == 0 and me.stdout.startswith("cli ")

    # Errors are the API's own words, on stderr, with exit status 1.
    missing = cli(live_api, tmp_path, "jobs", "show", "job_missing")
    assert missing.returncode == 1 and "404: job job_missing not found" in missing.stderr
    again = cli(live_api, tmp_path, "jobs", "cancel", job_id)
    assert again.returncode == 1 and "already succeeded" in again.stderr


def test_config_comes_from_the_credentials_file(live_api: LiveApi, tmp_path: Path) -> None:
    home = tmp_path / "home-with-creds"
    home.mkdir()
    (home / "credentials.json").write_text(
        json.dumps({"api_url": live_api.url, "teams": {"cli": live_api.key}})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEPOOL_API")}
    result = subprocess.run(
        [sys.executable, "-m", "commands", "teams", "me", "--json"],
        env={**env, "TUNEPOOL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "cli"
    bad = subprocess.run(
        [sys.executable, "-m", "commands", "teams", "me"],
        env={**env, "TUNEPOOL_HOME": str(home), "TUNEPOOL_API_KEY": "tp_wrong"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "401" in bad.stderr
