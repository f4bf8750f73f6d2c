"""Sequence classification: split, scores, and the engine end to end on the tiny model."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from tests.training.conftest import Recorder
from tunepool.data import DataError
from tunepool.data.text_files import TextExample
from worker.training import Hyperparameters, TrainSpec, finetune
from worker.training.sequence_classification import classification_scores, stratified_split

SPAM = ["win", "free", "prize", "claim", "cash", "urgent", "txt"]
HAM = ["see", "you", "later", "dinner", "home", "love", "tomorrow"]


def texts_csv(path: Path, count: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = ["text,label"]
    for _ in range(count):
        spam = rng.random() < 0.3
        words = rng.choices(SPAM if spam else HAM, k=rng.randint(3, 9))
        rows.append(f"{' '.join(words)},{'spam' if spam else 'ham'}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def text_spec(model: Path, train: Path, output: Path, **overrides) -> TrainSpec:
    values = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, **overrides}
    return TrainSpec(
        task="sequence-classification",
        base_model=str(model),
        train_file=train,
        train_format="csv",
        validation_file=None,
        validation_format=None,
        output_dir=output,
        hyperparameters=Hyperparameters.from_dict(values),
        device="cpu",
    )


def test_stratified_split_keeps_each_label_share_and_is_seeded():
    examples = [TextExample(str(i), "a" if i % 10 else "b", i + 1) for i in range(200)]
    kept, held = stratified_split(examples, 0.25, seed=1)
    assert Counter(e.label for e in held) == {"a": 45, "b": 5}
    assert len(kept) + len(held) == 200
    assert [e.line for e in held] == [e.line for e in stratified_split(examples, 0.25, 1)[1]]
    assert [e.line for e in held] != [e.line for e in stratified_split(examples, 0.25, 2)[1]]
    # A rare label with two examples still lands on both sides.
    rare = [*examples[:20], TextExample("r1", "r", 99), TextExample("r2", "r", 100)]
    kept, held = stratified_split(rare, 0.1, seed=0)
    assert "r" in {e.label for e in held} and "r" in {e.label for e in kept}


def test_scores_per_class_macro_and_confusion_matrix():
    truth = ["ham", "ham", "ham", "spam", "spam", "other"]
    predicted = ["ham", "spam", "ham", "spam", "ham", "other"]
    metrics, report = classification_scores(truth, predicted, ["ham", "other", "spam"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert report["classes"]["spam"]["precision"] == pytest.approx(0.5)
    assert report["classes"]["ham"]["recall"] == pytest.approx(2 / 3)
    assert metrics["f1[other]"] == 1.0
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.5) / 3)
    assert report["confusion_matrix"] == {
        "labels": ["ham", "other", "spam"],
        "rows_true_columns_predicted": [[2, 0, 1], [0, 1, 0], [1, 0, 1]],
    }


def test_engine_trains_a_classifier_with_label_maps_report_and_auto_values(tiny_model, tmp_path):
    train = texts_csv(tmp_path / "train.csv", 120)
    spec = text_spec(
        tiny_model, train, tmp_path / "out", epochs=3, learning_rate=5e-3, warmup_ratio="auto"
    )
    result = finetune(spec, Recorder())
    assert result.stopped is None
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    assert model.config.id2label == {0: "ham", 1: "spam"}
    assert result.report["metric_for_best"] == "macro_f1"
    assert result.report["data"]["validation_source"] == "split"
    assert result.metrics["accuracy"] > 0.9  # the two vocabularies do not overlap
    saved = json.loads((result.model_dir / "eval_report.json").read_text())
    assert saved["report"]["confusion_matrix"]["labels"] == ["ham", "spam"]
    assert result.hyperparameters_used["warmup_ratio"] == 0.1
    assert result.hyperparameters_used["auto"] == []
    card = (result.model_dir / "README.md").read_text()
    assert "Sequence (text) classification" in card
    assert "- train examples: 108" in card and "- labels (2): ham, spam" in card
    assert "| warmup_ratio | 0.1 |" in card and "| epochs | 3 |" in card
    assert f"| macro_f1 | {result.metrics['macro_f1']:.4f} |" in card
    assert "by `macro_f1`" in card


def test_validation_labels_must_occur_in_training(tiny_model, tmp_path):
    train = texts_csv(tmp_path / "train.csv", 20)
    validation = tmp_path / "validation.csv"
    validation.write_text("text,label\nhi,ham\nwho,eggs\n", encoding="utf-8")
    spec = dataclasses.replace(
        text_spec(tiny_model, train, tmp_path / "out"),
        validation_file=validation,
        validation_format="csv",
    )
    with pytest.raises(DataError) as caught:
        finetune(spec, Recorder())
    assert caught.value.line == 3 and "'eggs'" in caught.value.message


def test_resumed_classifier_run_matches_uninterrupted_run(tiny_model, tmp_path):
    train = texts_csv(tmp_path / "train.csv", 60)
    full = finetune(text_spec(tiny_model, train, tmp_path / "full"), Recorder())
    spec = text_spec(tiny_model, train, tmp_path / "resumed")
    stopped = finetune(spec, Recorder(stop_at=5))
    resumed = finetune(dataclasses.replace(spec, resume_from=stopped.model_dir), Recorder())

    def losses(directory: Path) -> list[float]:
        state = json.loads((directory / "trainer_state.json").read_text())
        return [entry["loss"] for entry in state["loss_history"]]

    assert losses(resumed.model_dir) == pytest.approx(losses(full.model_dir), abs=1e-5, rel=0)
    assert resumed.metrics == pytest.approx(full.metrics, abs=1e-5)
