"""The live progress line of ``tunepool jobs logs -f`` for each job kind."""

from __future__ import annotations

from commands.cli_progress import progress_line


def test_training_progress_shows_steps_epochs_and_tokens() -> None:
    line = progress_line({"step": 10, "epoch": 1.0, "loss": 0.5, "tokens_per_s": 900}, 2)
    assert line.startswith("[############............]  50% step 10  epoch 1.00/2")
    assert "900 tok/s" in line


def test_inference_progress_shows_inputs_done_rate_and_eta() -> None:
    data = {"done": 512, "total": 2048, "inputs_per_s": 256.0, "eta_s": 6.0}
    line = progress_line(data, None)
    assert line.startswith("[######..................]  25% 512/2,048 inputs")
    assert "256.0 inputs/s" in line and "ETA 0:00:06" in line
