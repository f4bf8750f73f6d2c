"""Tiny saved models for inference tests, built directly with transformers (seconds on a CPU).

``bias_to`` makes the classifier head predict one label for every token, so tests know
what the model will say without training it.
"""

from __future__ import annotations

import json
from pathlib import Path

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CLASS_LABELS = ["negative", "neutral", "positive"]


def tiny_model_dir(
    path: Path, labels: list[str], *, task: str = "token", bias_to: str | None = None, seed: int = 0
) -> Path:
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    from worker.training.models import make_tiny_model_dir

    make_tiny_model_dir(path)
    config_path = path / "config.json"
    raw = json.loads(config_path.read_text())
    raw["architectures"] = [
        "BertForTokenClassification" if task == "token" else "BertForSequenceClassification"
    ]
    config_path.write_text(json.dumps(raw))
    config = AutoConfig.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    auto = (
        AutoModelForTokenClassification if task == "token" else AutoModelForSequenceClassification
    )
    model = auto.from_config(config)
    if bias_to is not None:
        with torch.no_grad():
            model.classifier.bias.zero_()
            model.classifier.bias[labels.index(bias_to)] = 20.0
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(path).save_pretrained(path)
    return path
