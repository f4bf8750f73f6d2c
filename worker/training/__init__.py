"""The fine-tuning engine: plain functions over plain data, no Celery, Flask or SQL.

The API imports `worker.training.spec` to validate hyperparameters, so importing
this package must not pull in torch: the engine is only loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.training.callbacks import NullCallbacks, TrainCallbacks
from worker.training.models import make_tiny_model_dir, resolve_base_model
from worker.training.spec import Hyperparameters, TrainSpec

if TYPE_CHECKING:
    from worker.training.engine import TrainResult, finetune

__all__ = [
    "Hyperparameters",
    "NullCallbacks",
    "TrainCallbacks",
    "TrainResult",
    "TrainSpec",
    "finetune",
    "make_tiny_model_dir",
    "resolve_base_model",
]


def __getattr__(name: str) -> Any:
    if name in ("finetune", "TrainResult"):
        from worker.training import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
