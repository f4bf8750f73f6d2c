"""Data-parallel training: 2 processes on CPU (gloo) follow the single-process run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from transformers import AutoModelForTokenClassification

from tests.training.conftest import Recorder, tiny_spec
from worker.training import finetune, make_tiny_model_dir


def step_losses(directory: Path) -> list[float]:
    state = json.loads((directory / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["loss_history"]]


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Without dropout the two runs differ only in how the global batch's loss is
    # averaged (per rank, then over ranks, instead of over all labelled tokens).
    path = make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "bert")
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_two_gloo_ranks_train_like_one_process_with_the_same_global_batch(
    no_dropout_model, train_file, tmp_path
):
    spec = tiny_spec(no_dropout_model, train_file, tmp_path / "single", batch_size=8)
    single = finetune(spec, Recorder())
    recorder = Recorder()
    parallel = finetune(
        dataclasses.replace(spec, output_dir=tmp_path / "ddp", world_size=2), recorder
    )
    assert parallel.stopped is None
    assert parallel.global_step == single.global_step == 10  # 36 sentences / 8, x2
    expected, got = step_losses(single.model_dir), step_losses(parallel.model_dir)
    assert got == pytest.approx(expected, rel=0.05)
    assert got[0] == pytest.approx(expected[0], rel=0.02)  # identical weights at step 1
    # Rank 0 reports progress and evaluations, and writes the one model directory.
    assert [epoch for epoch, _ in recorder.evaluations] == [1, 2]
    assert recorder.progress[-1]["step"] == 10
    assert (parallel.model_dir / "README.md").exists()
    AutoModelForTokenClassification.from_pretrained(parallel.model_dir)
    assert sorted(p.name for p in parallel.model_dir.iterdir() if p.name.startswith(".")) == []


def test_a_stop_request_reaches_every_rank(no_dropout_model, train_file, tmp_path):
    spec = tiny_spec(
        no_dropout_model, train_file, tmp_path / "ddp", batch_size=8, log_every_steps=2
    )
    result = finetune(dataclasses.replace(spec, world_size=2), Recorder(stop_at=2))
    # Rank 0 asks every 2 steps (a broadcast each time): the 2nd answer, after step 4, stops.
    assert result.stopped == "preempt" and result.global_step == 4
    assert (result.model_dir / "optimizer.pt").exists()
