"""The progress reports of a training loop: when one is due, and what it says.

Both loops (the encoder tasks' and the causal-LM one) report the same fields, so the
CLI, the dashboard and the API read one shape. Epochs are counted as people count
them: ``epoch`` is the 1-based number of the epoch the step belongs to, out of
``epochs``; ``epochs_done`` is the fraction trained so far (1.5 = halfway through
the second).
"""

from __future__ import annotations

import math
from typing import Any

from tunepool.progress_rate import SmoothedRate
from worker.training.checkpoint import TrainerState


def report_due(step: int, steps_this_run: int, total_steps: int, every: int) -> bool:
    """Every ``every`` steps, and also at the first step of a run (a bar from the start,
    even for a job shorter than ``every`` steps) and at the last (a bar that reaches 100 %).

    Every rank of a data-parallel run sees the same steps, so all agree on the answer.
    """
    return step % every == 0 or steps_this_run == 1 or step >= total_steps


def epoch_number(state: TrainerState) -> int:
    """1-based: the epoch that the last step trained in (1 until the first ends)."""
    return max(1, math.ceil(round(state.fractional_epoch, 6)))


def progress_event(
    state: TrainerState,
    epochs: int,
    total_steps: int,
    loss: float | None,
    learning_rate: float,
    rate: SmoothedRate,
    steps: int,
    samples: int,
    tokens: int,
) -> dict[str, Any]:
    """The report after ``steps`` more steps of ``samples`` examples and ``tokens`` tokens.

    Throughput and ETA come from the time-smoothed rate (tunepool.progress_rate), which is
    recomputed at every report, so the ETA moves when the job speeds up or slows down.
    """
    rates = rate.update(steps=steps, samples=samples, tokens=tokens)
    eta = rate.eta_s(max(total_steps - state.global_step, 0))
    return {
        "step": state.global_step,
        "total_steps": total_steps,
        "epoch": epoch_number(state),
        "epochs": epochs,
        "epochs_done": round(state.fractional_epoch, 4),
        "loss": loss,
        "learning_rate": learning_rate,
        "samples_per_s": rates["samples"],
        "tokens_per_s": rates["tokens"],
        "trained_tokens": int(rate.total("tokens")),  # by this attempt, padding excluded
        "eta_s": None if eta is None else round(eta, 1),
    }
