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

from worker.inference.evaluate import entity_f1, sentence_text
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


def time_predict(loaded: LoadedModel, texts: Sequence[str], repeats: int = 1) -> float:
    """Seconds for the batched path over ``texts`` (best of ``repeats``)."""
    predict(loaded, list(texts[:8]))  # warm-up: first-call allocations and kernel selection
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(loaded, list(texts))
        best = min(best, time.perf_counter() - started)
    return best


def compress(
    source: Path, target: Path, examples: Sequence[Any] | None = None, max_examples: int = 500
) -> dict[str, Any]:
    """Quantise and report: sizes, int8 speedup on the evaluation sentences, metric change."""
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
    if sample:
        texts = [sentence_text(e.tokens)[0] for e in sample]
    else:  # no evaluation set: time on a fixed sentence so speed is still reported
        texts = ["tunepool serves fine-tuned models on the same pool in Oslo ."] * 64
    fp32_s, int8_s = time_predict(fp32, texts), time_predict(int8, texts)
    report.update(
        {
            "eval_sentences": len(sample),
            "seconds_fp32": fp32_s,
            "seconds_int8": int8_s,
            "speedup": fp32_s / int8_s if int8_s else None,
        }
    )
    if sample and fp32.task == TOKEN_TASK:
        before, after = entity_f1(fp32, sample), entity_f1(int8, sample)
        report.update({"f1_fp32": before["f1"], "f1_int8": after["f1"]})
        report["f1_delta"] = after["f1"] - before["f1"]
    return report
