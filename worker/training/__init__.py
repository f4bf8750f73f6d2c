"""The fine-tuning engine: plain functions over plain data, no Celery, Flask or SQL."""

from __future__ import annotations

from worker.training.callbacks import NullCallbacks, TrainCallbacks
from worker.training.engine import TrainResult, finetune
from worker.training.models import make_tiny_model_dir, resolve_base_model
from worker.training.spec import Hyperparameters, TrainSpec

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
