"""Fine-tuning the packaged MiniLM for real: entity F1 must rise far above untrained."""

from __future__ import annotations

import pytest
import torch

from tests.training.conftest import Recorder, ner_sentences, write_jsonl
from tunepool.data import read_token_examples
from worker.training import Hyperparameters, TrainSpec, finetune
from worker.training.evaluation import evaluate
from worker.training.models import load_token_classifier, load_tokenizer, minilm_path
from worker.training.token_classification import encode_sentences, infer_labels


@pytest.mark.slow
def test_minilm_learns_generated_entities(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", ner_sentences(200, seed=1))
    validation = write_jsonl(tmp_path / "validation.jsonl", ner_sentences(40, seed=2))
    hp = Hyperparameters(epochs=2, batch_size=16, learning_rate=1e-4, seed=7)

    # The same model before training: MiniLM's encoder with a seeded random head.
    examples = read_token_examples(validation, "jsonl")
    labels = infer_labels(read_token_examples(train, "jsonl"))
    base = str(minilm_path())
    untrained = load_token_classifier(base, labels, hp.seed, torch.device("cpu"))
    label2id = untrained.config.label2id
    sentences = encode_sentences(examples, load_tokenizer(base), label2id, hp.max_length)
    before, _ = evaluate(
        untrained, examples, sentences, untrained.config.id2label, 32, 0, torch.device("cpu")
    )

    spec = TrainSpec(
        "ner", "minilm", train, "jsonl", validation, "jsonl", tmp_path / "out", hp, device="cpu"
    )
    result = finetune(spec, Recorder())
    print(f"entity f1 untrained {before['f1']:.3f}, fine-tuned {result.metrics['f1']:.3f}")
    # A random head still hits a few one-word entities by chance.
    assert before["f1"] < 0.4
    assert result.metrics["f1"] > 0.9
    assert result.metrics["f1"] > before["f1"] + 0.5
