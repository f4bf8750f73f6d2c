"""Token statistics of a chat dataset and the dry-run estimate shown before a job starts.

OpenAI and Mistral show "tokens x epochs" and an expected duration before a
fine-tuning job runs; this is that, from the model's own rendering. The speed is a
figure the caller supplies (the platform's measured tokens/s for the model and
device), so the estimate stays a pure function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunepool.chat_estimates import dry_run_estimate
from tunepool.data.stats import MAX_EXAMPLES
from worker.training.causal_lm.rendering import EncodedChat, encode_chat

# The dry run lives in the core: the scheduler plans with it too.
__all__ = ["chat_token_report", "dry_run_estimate", "token_statistics"]


def token_statistics(items: Sequence[EncodedChat], max_length: int) -> dict[str, Any]:
    """Lengths (after cutting to max_length), trained tokens, and how many were cut."""
    lengths = sorted(len(item.input_ids) for item in items)
    if not lengths:
        return {"examples": 0, "tokens": 0, "trained_tokens": 0, "truncated_examples": 0}

    def at(share: float) -> int:
        return lengths[round(share * (len(lengths) - 1))]

    truncated = [item.line for item in items if item.truncated]
    return {
        "examples": len(lengths),
        "tokens": sum(lengths),
        "trained_tokens": sum(item.trained_tokens for item in items),
        "min": lengths[0],
        "median": at(0.5),
        "p95": at(0.95),
        "max": lengths[-1],
        "max_length": max_length,
        "truncated_examples": len(truncated),
        "truncated_lines": truncated[:10],
    }


def chat_token_report(
    path: Path,
    fmt: str,
    tokenizer: Any,
    max_length: int,
    epochs: int,
    tokens_per_s: float | None = None,
) -> dict[str, Any]:
    """The file's validation report plus token statistics and the dry-run estimate.

    Streams the file: each usable line is rendered and only its length is kept, so
    memory grows by one integer per example, not by the text.
    """
    from tunepool.data.chat import ChatExample, iter_chat_lines
    from tunepool.data.chat_report import chat_file_report

    report = chat_file_report(path, fmt)
    lengths: list[int] = []
    trained = 0
    over: list[int] = []
    over_count = 0
    for item in iter_chat_lines(path, fmt):
        if not isinstance(item, ChatExample):
            continue
        encoded = encode_chat(tokenizer, item, max_length)
        lengths.append(len(encoded.input_ids))
        trained += encoded.trained_tokens
        if encoded.truncated:
            over_count += 1
            if len(over) < MAX_EXAMPLES:
                over.append(item.line)
    lengths.sort()
    tokens = sum(lengths)
    report["tokens"] = {
        "total": tokens,
        "trained": trained,
        "min": lengths[0] if lengths else 0,
        "median": lengths[round(0.5 * (len(lengths) - 1))] if lengths else 0,
        "p95": lengths[round(0.95 * (len(lengths) - 1))] if lengths else 0,
        "max": lengths[-1] if lengths else 0,
        "max_length": max_length,
        "examples_over_max_length": {"count": over_count, "lines": over},
    }
    report["estimate"] = dry_run_estimate(tokens, epochs, tokens_per_s)
    return report
