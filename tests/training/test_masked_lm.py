"""Masked-LM continued pre-training: masking, loss/perplexity, resume, reuse as a base."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification

from tests.training.conftest import Recorder, tiny_spec
from worker.training import Hyperparameters, TrainSpec, finetune
from worker.training.masked_lm import EncodedDocument, MaskingTokens, mask_batch
from worker.training.token_classification import IGNORE_INDEX

WORDS = [
    "the",
    "pool",
    "trains",
    "models",
    "on",
    "shared",
    "gpus",
    "while",
    "teams",
    "wait",
    "for",
    "their",
    "turn",
]


def corpus(path: Path, count: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(4, 14))) for _ in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def mlm_spec(model: Path, train: Path, output: Path, **overrides) -> TrainSpec:
    values = {"epochs": 2, "batch_size": 8, "learning_rate": 1e-3, **overrides}
    return TrainSpec(
        task="masked-lm",
        base_model=str(model),
        train_file=train,
        train_format="text",
        validation_file=None,
        validation_format=None,
        output_dir=output,
        hyperparameters=Hyperparameters.from_dict(values),
        device="cpu",
    )


def test_masking_touches_only_real_tokens_and_labels_only_masked_positions():
    items = [EncodedDocument([101, *range(1000, 1200), 102], [True, *[False] * 200, True])] * 4
    tokens = MaskingTokens(pad=0, mask=103, vocab_size=30522)
    batch = mask_batch(items, tokens, torch.Generator().manual_seed(0))
    labels, inputs = batch["labels"], batch["input_ids"]
    chosen = labels != IGNORE_INDEX
    assert 0.10 < chosen.float().mean() < 0.20
    assert not chosen[:, 0].any() and not chosen[:, 201].any()  # [CLS], [SEP]
    assert not chosen[:, 202:].any()  # padding (to a multiple of 8)
    original = torch.tensor(items[0].input_ids)
    assert torch.equal(labels[chosen], original.expand(4, -1)[chosen[:, :202]])
    assert (inputs[chosen] == 103).float().mean() > 0.6
    kept = ~chosen[:, :202]
    assert torch.equal(inputs[:, :202][kept], original.expand(4, -1)[kept])  # unchosen: as is
    again = mask_batch(items, tokens, torch.Generator().manual_seed(0))
    assert torch.equal(again["input_ids"], inputs)


def test_masked_lm_reports_loss_and_perplexity_and_feeds_a_later_ner_job(
    tiny_model, train_file, tmp_path
):
    train = corpus(tmp_path / "corpus.text", 80)
    result = finetune(mlm_spec(tiny_model, train, tmp_path / "mlm", epochs=3), Recorder())
    history = result.report["history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3]
    for entry in history:
        assert entry["perplexity"] == pytest.approx(math.exp(entry["loss"]))
    assert history[-1]["loss"] < history[0]["loss"]  # a 12-word vocabulary is learnable
    assert result.report["metric_for_best"] == "loss"
    AutoModelForMaskedLM.from_pretrained(result.model_dir)

    # The masked-lm output is the base_model of an NER job: its encoder is reused.
    ner = finetune(tiny_spec(result.model_dir, train_file, tmp_path / "ner", epochs=1), Recorder())
    assert ner.stopped is None and "f1" in ner.metrics
    adapted = load_file(result.model_dir / "model.safetensors")
    key = "bert.embeddings.word_embeddings.weight"
    start = AutoModelForTokenClassification.from_pretrained(
        result.model_dir, num_labels=4
    ).state_dict()
    assert torch.equal(start[key], adapted[key])


def test_resumed_masked_lm_run_masks_and_matches_the_uninterrupted_run(tiny_model, tmp_path):
    train = corpus(tmp_path / "corpus.text", 40)
    full = finetune(mlm_spec(tiny_model, train, tmp_path / "full"), Recorder())
    spec = mlm_spec(tiny_model, train, tmp_path / "resumed")
    stopped = finetune(spec, Recorder(stop_at=3))
    resumed = finetune(dataclasses.replace(spec, resume_from=stopped.model_dir), Recorder())

    def losses(directory: Path) -> list[float]:
        state = json.loads((directory / "trainer_state.json").read_text())
        return [entry["loss"] for entry in state["loss_history"]]

    assert losses(resumed.model_dir) == pytest.approx(losses(full.model_dir), abs=1e-5, rel=0)
