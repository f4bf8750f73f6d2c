"""Dynamic int8 quantisation of a model directory, with its size, speed and metric change.

The int8 directory keeps config.json and the tokenizer files (Hugging Face layout)
and replaces the weights with ``model_int8.pt`` (a quantised state dict) plus a
``tunepool_quantization.json`` marker that ``load_model`` recognises. Speed is timed
on the same inputs through the same batched path for both models.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from worker.inference.evaluate import served_scores
from worker.inference.inputs import ModelInput
from worker.inference.model import (
    INT8_WEIGHTS,
    QUANTIZATION_FILE,
    TOKEN_TASK,
    LoadedModel,
    load_model,
    quantize,
)
from worker.inference.predict import predict

_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json")


def _bytes_on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def quantize_dir(source: Path, target: Path) -> LoadedModel:
    """Write the int8 version of ``source`` to ``target``; returns it loaded."""
    fp32 = load_model(source)
    if fp32.quantized:
        raise ValueError("the model is already quantised")
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and not any(path.match(pattern) for pattern in _WEIGHTS):
            shutil.copyfile(path, target / path.name)
    int8 = quantize(fp32.model)
    torch.save(int8.state_dict(), target / INT8_WEIGHTS)
    marker = {"method": "dynamic", "dtype": "qint8", "modules": ["Linear"], "weights": INT8_WEIGHTS}
    (target / QUANTIZATION_FILE).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    return load_model(target)


def time_predict(loaded: LoadedModel, inputs: Sequence[ModelInput], repeats: int = 1) -> float:
    """Seconds for the batched path over ``inputs`` (best of ``repeats``)."""
    predict(loaded, list(inputs[:8]))  # warm-up: first-call allocations and kernel selection
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(loaded, list(inputs))
        best = min(best, time.perf_counter() - started)
    return best


def compress(
    source: Path, target: Path, examples: Sequence[Any] | None = None, max_examples: int = 500
) -> dict[str, Any]:
    """Quantise and report: sizes, int8 speedup on the evaluation examples, metric change.

    ``examples`` are labelled examples of the model's task: token examples (.tokens,
    .tags) for a token classifier, text examples (.text, .label) for a sequence
    classifier. The metric compared is entity F1 or accuracy (``served_scores``)."""
    int8 = quantize_dir(source, target)
    fp32 = load_model(source)
    report: dict[str, Any] = {
        "quantization": "dynamic-int8",
        "size_bytes_fp32": _bytes_on_disk(source),
        "size_bytes_int8": _bytes_on_disk(target),
        "state_bytes_fp32": fp32.nbytes,
        "state_bytes_int8": int8.nbytes,
    }
    report["size_ratio"] = report["size_bytes_int8"] / max(report["size_bytes_fp32"], 1)
    sample = list(examples or [])[:max_examples]
    inputs: list[ModelInput]
    if sample:
        inputs = [list(e.tokens) if fp32.task == TOKEN_TASK else e.text for e in sample]
    else:  # no evaluation set: time on a fixed sentence so speed is still reported
        inputs = ["tunepool serves fine-tuned models on the same pool in Oslo ."] * 64
    fp32_s, int8_s = time_predict(fp32, inputs), time_predict(int8, inputs)
    report.update(
        {
            "eval_sentences": len(sample),
            "seconds_fp32": fp32_s,
            "seconds_int8": int8_s,
            "speedup": fp32_s / int8_s if int8_s else None,
        }
    )
    if sample:
        metric = "f1" if fp32.task == TOKEN_TASK else "accuracy"
        before, after = served_scores(fp32, sample), served_scores(int8, sample)
        report.update(
            {
                "metric": metric,
                f"{metric}_fp32": before[metric],
                f"{metric}_int8": after[metric],
                f"{metric}_delta": after[metric] - before[metric],
            }
        )
    return report
