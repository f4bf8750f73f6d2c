"""How the engine talks to whoever runs it, without knowing who that is.

The Celery task implements `TrainCallbacks` to publish progress, upload
checkpoints to the object store, renew its lease and relay cancel/preempt
requests; tests and benchmarks use `NullCallbacks` or a small recorder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class TrainCallbacks(Protocol):
    def on_progress(self, event: dict[str, Any]) -> None:
        """At the first step, every `log_every_steps` optimizer steps and at the last:
        step, total_steps, epoch (1-based) of epochs, epochs_done, loss (mean since the
        last event), learning_rate, samples_per_s and tokens_per_s (non-pad tokens) and
        eta_s, both smoothed over time (worker.training.progress)."""

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        """After the validation pass that ends `epoch`, counted from 1 as people do."""

    def on_checkpoint(self, step: int, epoch: float, path: Path, metrics: dict[str, Any]) -> None:
        """`path` is a complete checkpoint directory. The caller may upload and delete
        it; the engine deletes its older local checkpoints itself. `metrics` are those
        of this step: `train_loss`, and `valid_<name>` for each validation score when
        an evaluation ran at this step (never the best so far)."""

    def should_stop(self) -> str | None:
        """Asked after every optimizer step. A reason (a
        ``storage.attempts.StopReason``) makes the engine checkpoint and return."""


class NullCallbacks:
    """Callbacks that record nothing and never stop the run."""

    def on_progress(self, event: dict[str, Any]) -> None:
        pass

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        pass

    def on_checkpoint(self, step: int, epoch: float, path: Path, metrics: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> str | None:
        return None
