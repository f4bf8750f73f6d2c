"""Fixtures for engine tests: a tiny random BERT, generated NER data, a recorder."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from worker.training import Hyperparameters, TrainSpec, make_tiny_model_dir

FIRST_NAMES = ["Alice", "Bob", "Chidi", "Dagny", "Eero", "Tunepoolification", "Xochitl"]
PLACES = ["Paris", "New York", "Kathmandu", "Ouagadougou", "Rio de Janeiro"]
VERBS = ["visited", "left", "loves", "photographed"]


def ner_sentences(count: int, seed: int = 0) -> list[dict[str, list[str]]]:
    """Sentences like "Alice visited New York today ." with PER and LOC tags."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        person = rng.choice(FIRST_NAMES)
        place = rng.choice(PLACES).split()
        tail = rng.choice([["today", "."], ["."], ["last", "week", "!"]])
        tokens = [person, rng.choice(VERBS), *place, *tail]
        tags = ["B-PER", "O", "B-LOC"] + ["I-LOC"] * (len(place) - 1) + ["O"] * len(tail)
        if rng.random() < 0.5:  # put the place first in half of them
            tokens = [*place, "welcomed", person, *tail]
            tags = ["B-LOC"] + ["I-LOC"] * (len(place) - 1) + ["O", "B-PER"] + ["O"] * len(tail)
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, list[str]]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", ner_sentences(40))


def tiny_spec(model: Path, train: Path, output: Path, **overrides: Any) -> TrainSpec:
    """A spec that trains the tiny model in about a second on a CPU."""
    values: dict[str, Any] = {"epochs": 2, "batch_size": 4, "learning_rate": 1e-3}
    values.update(overrides)
    return TrainSpec(
        task="ner",
        base_model=str(model),
        train_file=train,
        train_format="jsonl",
        validation_file=None,
        validation_format=None,
        output_dir=output,
        hyperparameters=Hyperparameters.from_dict(values),
        device="cpu",
    )


class Recorder:
    """Records every callback; asks to stop with `stop_reason` once `stop_at` steps passed."""

    def __init__(self, stop_at: int | None = None, stop_reason: str = "preempt") -> None:
        self.progress: list[dict[str, Any]] = []
        self.evaluations: list[tuple[int, dict[str, Any]]] = []
        self.checkpoints: list[tuple[int, float, Path]] = []
        # step -> (metrics handed over, the step's loss as the checkpoint itself records it)
        self.checkpoint_metrics: dict[int, tuple[dict[str, Any], float]] = {}
        self.stop_at, self.stop_reason = stop_at, stop_reason
        self.steps = 0

    def on_progress(self, event: dict[str, Any]) -> None:
        self.progress.append(event)

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.evaluations.append((epoch, metrics))

    def on_checkpoint(self, step: int, epoch: float, path: Path, metrics: dict[str, Any]) -> None:
        assert (path / "trainer_state.json").exists()
        self.checkpoints.append((step, epoch, path))
        state = json.loads((path / "trainer_state.json").read_text())
        self.checkpoint_metrics[step] = (dict(metrics), state["loss_history"][-1]["loss"])

    def should_stop(self) -> str | None:
        self.steps += 1
        return self.stop_reason if self.steps == self.stop_at else None
