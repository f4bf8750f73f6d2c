"""The pre-flight report of a job: data findings, the hyperparameters "auto" would
choose, and an estimate of steps and run time. Torch-free: the API runs it for
`POST /v1/jobs` with `"validate_only": true`.

Run-time estimates divide the real (non-padding) word pieces a run will train on
by a measured training throughput of a MiniLM-sized model (bench/train_throughput.py
on 2 CPU cores; a datacenter GPU is taken as about 100x that). They are rough by
design and labelled so; larger models take proportionally longer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunepool.data import DataError, read_token_examples
from tunepool.data.pieces import PieceTokenizer, default_model_dir, load_piece_tokenizer
from tunepool.data.stats import token_dataset_stats
from tunepool.data.text_files import read_text_documents, read_text_examples
from worker.training.spec import Hyperparameters, canonical_task

# Real word pieces trained per second (forward + backward + step), MiniLM-L6.
CPU_TOKENS_PER_S = 4000.0
GPU_TOKENS_PER_S = 400_000.0
MINILM_ALIASES = ("all-MiniLM-L6-v2", "minilm", "builtin:minilm")


def base_model_tokenizer(base_model: str) -> PieceTokenizer | None:
    """The word-piece tokenizer of a builtin or local base model; None for hub ids
    and registry models (their files are not on the API host)."""
    if base_model in MINILM_ALIASES:
        directory = default_model_dir()
        return load_piece_tokenizer(str(directory)) if directory else None
    if Path(base_model).is_dir():
        return load_piece_tokenizer(base_model)
    return None


def validation_report(
    task: str,
    train: tuple[Path, str],
    validation: tuple[Path, str] | None,
    hyperparameters: dict[str, Any],
    base_model: str,
) -> dict[str, Any]:
    """Re-read the data with the job's model and settings; DataError names a line."""
    task = canonical_task(task)
    hp = Hyperparameters.from_dict(hyperparameters, omitted_auto=True)
    tokenizer = base_model_tokenizer(base_model)
    train_count, piece_lengths, train_stats = _read(task, *train, tokenizer, hp.max_length)
    if validation is None:
        held_out = max(1, round(train_count * hp.validation_split))
        train_count -= held_out
        piece_lengths = piece_lengths[:train_count]
    used = hp.resolve_auto(task, train_count)
    report: dict[str, Any] = {
        "task": task,
        "train": train_stats,
        "hyperparameters_auto": {name: getattr(used, name) for name in hp.auto},
        "hyperparameters": used.to_dict(),
        "estimate": estimate(train_count, piece_lengths, used),
    }
    if validation is not None:
        report["validation"] = _read(task, *validation, tokenizer, hp.max_length)[2]
    return report


def estimate(train_count: int, piece_lengths: list[int], hp: Hyperparameters) -> dict[str, Any]:
    steps_per_epoch = math.ceil(math.ceil(train_count / hp.batch_size) / hp.gradient_accumulation)
    result: dict[str, Any] = {
        "train_examples": train_count,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * hp.epochs,
    }
    if piece_lengths:
        tokens = sum(min(length, hp.max_length) for length in piece_lengths) * hp.epochs
        result.update(
            real_tokens=tokens,
            seconds_cpu_minilm=round(tokens / CPU_TOKENS_PER_S, 1),
            seconds_gpu_minilm=round(tokens / GPU_TOKENS_PER_S, 1),
            basis="real word pieces / measured MiniLM training throughput; rough",
        )
    return result


def _read(
    task: str, path: Path, fmt: str, tokenizer: PieceTokenizer | None, max_length: int
) -> tuple[int, list[int], dict[str, Any]]:
    if task == "token-classification":
        examples = read_token_examples(path, fmt)
        stats = token_dataset_stats(examples, tokenizer, max_length if tokenizer else None)
        lengths = [len(tokenizer(e.tokens)["input_ids"]) for e in examples] if tokenizer else []
        return len(examples), lengths, stats
    texts = (
        [e.text for e in read_text_examples(path, fmt)]
        if task == "sequence-classification"
        else [d.text for d in read_text_documents(path, fmt)]
    )
    if not texts:
        raise DataError("no examples")
    lengths = [tokenizer.count(text) for text in texts] if tokenizer else []
    summary: dict[str, Any] = {"examples": len(texts)}
    if lengths:
        cut = sum(1 for length in lengths if length > max_length)
        summary["truncated_texts"] = {"max_length": max_length, "count": cut}
    return len(texts), lengths, summary
