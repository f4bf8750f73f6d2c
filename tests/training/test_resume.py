"""A run stopped and resumed from its checkpoint follows the uninterrupted trajectory."""

from __future__ import annotations

import dataclasses
import json

import pytest
from safetensors.torch import load_file

from tests.training.conftest import Recorder, tiny_spec
from worker.training import finetune


def step_losses(result_dir):
    state = json.loads((result_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["loss_history"]]


@pytest.mark.parametrize(
    ("stop_at", "overrides", "holds_best_weights"),
    [
        (3, {}, False),  # mid-epoch, before any evaluation
        (9, {}, False),  # on the last step of epoch 1, before its evaluation
        (4, {"gradient_accumulation": 2}, False),
        # The best epoch is epoch 1 of 4 (f1 1.0 from then on, ties keep the first), so
        # the checkpoint at step 25 must carry the best weights besides the current ones.
        (25, {"epochs": 4, "learning_rate": 1e-2}, True),
    ],
)
def test_resumed_run_matches_uninterrupted_run(
    tiny_model, train_file, tmp_path, stop_at, overrides, holds_best_weights
):
    full = finetune(tiny_spec(tiny_model, train_file, tmp_path / "full", **overrides), Recorder())
    expected = step_losses(full.model_dir)
    assert full.global_step == len(expected) > stop_at

    first_spec = tiny_spec(tiny_model, train_file, tmp_path / "resumed", **overrides)
    recorder = Recorder(stop_at=stop_at)
    stopped = finetune(first_spec, recorder)
    assert stopped.stopped == "preempt"
    assert stopped.global_step == stop_at
    assert recorder.checkpoints[-1][0] == stop_at
    assert len(step_losses(stopped.model_dir)) == stop_at
    assert (stopped.model_dir / "best_model.safetensors").exists() == holds_best_weights

    resumed = finetune(dataclasses.replace(first_spec, resume_from=stopped.model_dir), Recorder())
    assert resumed.stopped is None
    assert resumed.global_step == full.global_step
    assert step_losses(resumed.model_dir) == pytest.approx(expected, abs=1e-5, rel=0)
    assert resumed.metrics == pytest.approx(full.metrics, abs=1e-5)
    assert resumed.report["best_epoch"] == full.report["best_epoch"]
    full_weights = load_file(full.model_dir / "model.safetensors")
    resumed_weights = load_file(resumed.model_dir / "model.safetensors")
    assert full_weights.keys() == resumed_weights.keys()
    for name, tensor in full_weights.items():
        assert resumed_weights[name].allclose(tensor, atol=1e-5), name
