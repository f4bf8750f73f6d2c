"""finetune end to end on the tiny model: outputs, best epoch, stop requests, errors."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from tests.training.conftest import Recorder, ner_sentences, tiny_spec, write_jsonl
from tunepool.data import DataError, read_token_examples
from worker.training import Hyperparameters, finetune, resolve_base_model
from worker.training.evaluation import evaluate
from worker.training.models import minilm_path
from worker.training.token_classification import encode_sentences

LABELS = ["O", "B-LOC", "B-PER", "I-LOC"]


def seeded_split(examples, seed):
    """The engine's 10 % validation split, redone here to score the saved model."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held_out = set(order[: round(len(examples) * 0.1)])
    return (
        [e for i, e in enumerate(examples) if i not in held_out],
        [e for i, e in enumerate(examples) if i in held_out],
    )


def test_output_is_a_hugging_face_model_with_label_maps(tiny_model, train_file, tmp_path):
    recorder = Recorder()
    result = finetune(
        tiny_spec(tiny_model, train_file, tmp_path / "out", log_every_steps=2), recorder
    )
    assert result.stopped is None
    assert result.model_dir == tmp_path / "out"
    assert (result.global_step, result.epochs_completed) == (18, 2)  # 36 sentences / 4, x2

    model = AutoModelForTokenClassification.from_pretrained(result.model_dir)
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.label2id == {label: i for i, label in enumerate(LABELS)}
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    logits = model(
        **tokenizer(["Alice", "visited", "Paris"], is_split_into_words=True, return_tensors="pt")
    ).logits
    assert logits.shape[-1] == len(LABELS)

    report = json.loads((result.model_dir / "eval_report.json").read_text())
    assert report["labels"] == LABELS
    assert report["data"] == {
        "train_sentences": 36,
        "validation_sentences": 4,
        "validation_source": "split",
    }
    assert set(report["report"]["entity"]) == {"default", "strict_iob2"}
    card = (result.model_dir / "README.md").read_text()
    assert card.startswith("---\npipeline_tag: token-classification")
    assert "- train sentences: 36" in card and "- validation source: split" in card
    assert f"| f1 | {result.metrics['f1']:.4f} |" in card and "| batch_size | 4 |" in card
    assert [epoch for epoch, _ in recorder.evaluations] == [1, 2]  # as people count
    # Checkpoints and the best-weights copy are superseded by the final model.
    assert not (result.model_dir / "checkpoints").exists()
    assert not (result.model_dir / ".best").exists()


def test_progress_events_are_complete_and_count_real_tokens(tiny_model, train_file, tmp_path):
    recorder = Recorder()
    finetune(tiny_spec(tiny_model, train_file, tmp_path / "out", log_every_steps=3), recorder)
    # From the first step (a bar from the start) to the last (a bar that reaches 100 %).
    assert [event["step"] for event in recorder.progress] == [1, 3, 6, 9, 12, 15, 18]
    for event in recorder.progress:
        assert set(event) == {
            "step",
            "total_steps",
            "epoch",
            "epochs",
            "epochs_done",
            "loss",
            "learning_rate",
            "samples_per_s",
            "tokens_per_s",
            "trained_tokens",
            "eta_s",
        }
    # Epochs as people count them: the first nine steps are epoch 1 of 2.
    assert [(e["epoch"], e["epochs"]) for e in recorder.progress] == [(1, 2)] * 4 + [(2, 2)] * 3
    assert recorder.progress[-1]["epochs_done"] == 2.0
    assert {e["total_steps"] for e in recorder.progress} == {18}
    # Over both epochs the tokens counted must be exactly the real word pieces of the
    # training split twice, no padding.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    train, _ = seeded_split(read_token_examples(train_file, "jsonl"), seed=42)
    pieces = sum(len(tokenizer(e.tokens, is_split_into_words=True)["input_ids"]) for e in train)
    assert recorder.progress[-1]["trained_tokens"] == 2 * pieces
    assert recorder.progress[-1]["learning_rate"] == 0.0  # linear decay ends at 0
    assert recorder.progress[-1]["eta_s"] == 0.0


def test_best_epoch_is_kept_not_the_last(tiny_model, train_file, tmp_path):
    # With this seed and rate, f1 reaches 1.0 at epoch 2 and stays there while the
    # loss keeps falling: the ties keep epoch 2, whose weights differ from epoch 4's.
    spec = tiny_spec(tiny_model, train_file, tmp_path / "out", epochs=4, learning_rate=1e-2)
    result = finetune(spec, Recorder())
    history = result.report["history"]
    assert result.report["best_epoch"] == 2 and history[1]["epoch"] == 2
    assert history[1]["loss"] > history[3]["loss"] * 2

    # Re-scoring the saved model reproduces epoch 2, not epoch 4.
    model = AutoModelForTokenClassification.from_pretrained(result.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    _, validation = seeded_split(read_token_examples(train_file, "jsonl"), seed=42)
    sentences = encode_sentences(validation, tokenizer, model.config.label2id, 128)
    metrics, _ = evaluate(
        model, validation, sentences, model.config.id2label, 8, 0, torch.device("cpu")
    )
    assert metrics["loss"] == pytest.approx(history[1]["loss"], abs=1e-5)


def test_stop_request_writes_a_checkpoint_and_returns_the_reason(tiny_model, train_file, tmp_path):
    recorder = Recorder(stop_at=5, stop_reason="cancel")
    result = finetune(tiny_spec(tiny_model, train_file, tmp_path / "out"), recorder)
    assert result.stopped == "cancel"
    assert result.global_step == 5
    assert result.epochs_completed == 0
    step, epoch, path = recorder.checkpoints[-1]
    assert (step, path) == (5, result.model_dir)
    assert epoch == pytest.approx(5 / 9)
    for name in (
        "model.safetensors",
        "config.json",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pt",
        "trainer_state.json",
    ):
        assert (path / name).exists(), name
    state = json.loads((path / "trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"], state["batches_done"]) == (5, 0, 5)
    assert len(state["loss_history"]) == 5
    # The checkpoint loads as a model too, with the label maps.
    model = AutoModelForTokenClassification.from_pretrained(path)
    assert model.config.id2label == dict(enumerate(LABELS))


def test_periodic_and_epoch_end_checkpoints(tiny_model, train_file, tmp_path):
    recorder = Recorder()
    spec = tiny_spec(tiny_model, train_file, tmp_path / "out", epochs=3, checkpoint_every_steps=4)
    finetune(spec, recorder)
    # Every 4 steps, plus the ends of epochs 1 and 2 (steps 9, 18); the last epoch
    # ends with the final model instead.
    assert [step for step, _, _ in recorder.checkpoints] == [4, 8, 9, 12, 16, 18, 20, 24]
    assert [epoch for step, epoch, _ in recorder.checkpoints if step in (9, 18)] == [1.0, 2.0]


def test_each_checkpoint_carries_the_metrics_of_its_own_step(tiny_model, train_file, tmp_path):
    """Not the best so far (issue 20, item 12): the step's training loss, and validation
    scores only where an evaluation ran at that very step."""
    recorder = Recorder()
    spec = tiny_spec(tiny_model, train_file, tmp_path / "out", epochs=3, checkpoint_every_steps=4)
    finetune(spec, recorder)
    evaluated = {9: recorder.evaluations[0][1], 18: recorder.evaluations[1][1]}
    assert sorted(recorder.checkpoint_metrics) == [4, 8, 9, 12, 16, 18, 20, 24]
    for step, (metrics, loss_at_step) in recorder.checkpoint_metrics.items():
        assert metrics["train_loss"] == pytest.approx(loss_at_step)
        valid = {k.removeprefix("valid_"): v for k, v in metrics.items() if k.startswith("valid_")}
        if step in evaluated:
            assert valid == evaluated[step] and "f1" in valid and "loss" in valid
        else:
            assert valid == {}, step  # nothing was evaluated at this step
        assert set(metrics) == {"train_loss", *(f"valid_{k}" for k in valid)}


def test_validation_labels_must_occur_in_training(tiny_model, train_file, tmp_path):
    rows = ner_sentences(3)
    rows[2]["tags"][0] = "B-ORG"
    validation = write_jsonl(tmp_path / "validation.jsonl", rows)
    spec = dataclasses.replace(
        tiny_spec(tiny_model, train_file, tmp_path / "out"),
        validation_file=validation,
        validation_format="jsonl",
    )
    with pytest.raises(DataError) as caught:
        finetune(spec, Recorder())
    assert caught.value.line == 3
    assert "'B-ORG'" in caught.value.message


def test_resume_refuses_changed_hyperparameters(tiny_model, train_file, tmp_path):
    spec = tiny_spec(tiny_model, train_file, tmp_path / "out")
    stopped = finetune(spec, Recorder(stop_at=2))
    changed = dataclasses.replace(
        spec,
        resume_from=stopped.model_dir,
        hyperparameters=dataclasses.replace(spec.hyperparameters, batch_size=8),
    )
    with pytest.raises(ValueError, match="batch_size"):
        finetune(changed, Recorder())


def test_hyperparameters_reject_unknown_keys_and_bad_values():
    assert Hyperparameters.from_dict({"epochs": 1}).epochs == 1
    with pytest.raises(ValueError, match="'learning_rat'"):
        Hyperparameters.from_dict({"learning_rat": 1e-4})
    with pytest.raises(ValueError, match="batch_size"):
        Hyperparameters.from_dict({"batch_size": 0})


def test_base_model_names_resolve_to_local_directories(tmp_path):
    for alias in ("all-MiniLM-L6-v2", "minilm", "builtin:minilm"):
        assert resolve_base_model(alias) == str(minilm_path())
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)
    assert resolve_base_model("bert-base-cased") == "bert-base-cased"


def test_unknown_task_and_metric_are_rejected(tiny_model, train_file, tmp_path):
    spec = tiny_spec(tiny_model, train_file, tmp_path / "out")
    with pytest.raises(ValueError, match="task"):
        finetune(dataclasses.replace(spec, task="summarisation"), Recorder())
    with pytest.raises(ValueError, match="metric_for_best"):
        finetune(
            tiny_spec(tiny_model, train_file, tmp_path / "o", metric_for_best="bleu"), Recorder()
        )


def test_package_and_spec_import_without_torch():
    # The API validates hyperparameters with worker.training.spec on torch-free hosts.
    code = (
        "import sys, worker.training, worker.training.spec; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "sys.exit(', '.join(bad) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_early_stopping_ends_after_patience_evaluations_without_improvement(
    tiny_model, train_file, tmp_path
):
    # f1 reaches 1.0 within a few epochs at this rate; a tie is no improvement.
    spec = tiny_spec(
        tiny_model,
        train_file,
        tmp_path / "out",
        epochs=8,
        learning_rate=1e-2,
        early_stopping_patience=1,
    )
    result = finetune(spec, Recorder())
    history = result.report["history"]
    best = result.report["best_epoch"]
    assert result.metrics["f1"] == 1.0
    # Stopped at the first evaluation that did not improve on the best one.
    assert len(history) < 8 and result.epochs_completed == len(history)
    assert history[-1]["epoch"] == best + 1
    assert history[-1]["f1"] <= history[best - 1]["f1"]  # epochs count from 1
    assert not (result.model_dir / "checkpoints").exists()
