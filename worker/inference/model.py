"""Loading a model directory (Hugging Face format, or tunepool's int8 variant) for inference."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

TOKEN_TASK = "token-classification"
TEXT_TASK = "text-classification"
# Written next to config.json by `compress`: the weights are a dynamically quantised state dict.
QUANTIZATION_FILE = "tunepool_quantization.json"
INT8_WEIGHTS = "model_int8.pt"


@dataclass
class LoadedModel:
    task: str  # TOKEN_TASK or TEXT_TASK
    model: Any  # a transformers PreTrainedModel (or its quantised copy), in eval mode
    tokenizer: Any  # a fast tokenizer: offsets are required for entity spans
    id2label: dict[int, str]
    max_length: int
    nbytes: int
    quantized: bool = False

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]


def task_of(config: Any) -> str:
    architectures = " ".join(getattr(config, "architectures", None) or [])
    if "TokenClassification" in architectures:
        return TOKEN_TASK
    if "SequenceClassification" in architectures:
        return TEXT_TASK
    raise ValueError(
        f"unsupported architecture {architectures or '(none)'}: "
        "expected a token- or sequence-classification model"
    )


def _auto_class(task: str) -> Any:
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return (
        AutoModelForTokenClassification
        if task == TOKEN_TASK
        else AutoModelForSequenceClassification
    )


def quantize(model: Any) -> Any:
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations on the fly)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def state_bytes(model: Any) -> int:
    """Bytes of the model's state (a quantised Linear keeps its weights in packed params)."""
    total = 0

    def add(value: Any) -> None:
        nonlocal total
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, tuple | list):
            for item in value:
                add(item)

    for value in model.state_dict().values():
        add(value)
    return total


def load_model(model_dir: Path, device: str = "cpu") -> LoadedModel:
    from transformers import AutoConfig, AutoTokenizer

    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    task = task_of(config)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError("a fast tokenizer (tokenizer.json) is required for character offsets")
    quantized = (model_dir / QUANTIZATION_FILE).is_file()
    if quantized:
        model = quantize(_auto_class(task).from_config(config))
        # Our own file, written by `compress` and checksum-verified on download; a
        # quantised state dict holds packed parameters that weights_only cannot load.
        state = torch.load(model_dir / INT8_WEIGHTS, map_location="cpu", weights_only=False)
        model.load_state_dict(state, strict=True)
    else:
        model = _auto_class(task).from_pretrained(model_dir).to(device)
    model.eval()
    limits = [
        512,
        int(getattr(config, "max_position_embeddings", 512) or 512),
        int(min(tokenizer.model_max_length, 1_000_000)),
    ]
    return LoadedModel(
        task=task,
        model=model,
        tokenizer=tokenizer,
        id2label={int(k): str(v) for k, v in config.id2label.items()},
        max_length=min(limits),
        nbytes=state_bytes(model),
        quantized=quantized,
    )


def read_quantization(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / QUANTIZATION_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
