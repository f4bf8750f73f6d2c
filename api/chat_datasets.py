"""Chat (``causal-lm``) data in the API: the upload report and a job's dry run.

An upload is checked line by line (``tunepool.data.chat_report``): a bad role, empty
content or a conversation without an assistant turn is a 422 naming every line found
(the first ``MAX_EXAMPLES`` of each kind). Tool definitions and tool calls are left
out with the named warning ``tools_ignored``. Tokens are counted with the chat model's
own tokenizer and template through the ``tokenizers`` library (never transformers):
the same renderer the engine trains with, so the counts are the run's. Uploads count
with the default chat model, SmolLM2-135M-Instruct, whose tokenizer comes from the
platform's converted copy (``storage.converted_models``); before any worker has made
that copy the tokens are approximated from characters and the report says so. A job's
``validate_only`` counts again with its own base model and hyperparameters.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from api.context import db, platform
from api.errors import ApiError
from storage.blobs import fetch_file
from storage.converted_models import published_build
from storage.models import StoredObject
from tunepool.builtin_models import SMOLLM2_NAME, SMOLLM2_SOURCE, smollm2_source_id
from tunepool.chat_estimates import (
    DEFAULT_EPOCHS,
    DEFAULT_MAX_LENGTH,
    approximate_tokens,
    expected_by_device,
)
from tunepool.data.chat import ChatExample, iter_chat_lines
from tunepool.data.chat_report import chat_file_report
from tunepool.data.chat_tokenizer import CHAT_TOKENIZER_FILES, ChatTokenizer, load_chat_tokenizer
from tunepool.data.stats import MAX_EXAMPLES
from tunepool.quoting import excerpt

# `chat` detects the format from the first line; the others hold every line to theirs.
CHAT_FORMATS = ("chat", "openai", "sharegpt", "alpaca")
WARNINGS = {
    "tools_ignored": "tool definitions, tool calls and tool messages are not trained: "
    "they were left out of these lines"
}


def reader_format(fmt: str) -> str:
    """The chat readers' name for a dataset's format (``chat`` is their ``auto``)."""
    return "auto" if fmt == "chat" else fmt


def chat_tokenizer(source: str) -> ChatTokenizer | None:
    """The tokenizer of an allow-listed chat model's ``source`` (the operator's, never a
    caller's string): the builtin SmolLM2's converted copy, or a local model directory.
    None when the API cannot read one (no copy yet, a hub id)."""
    if source == SMOLLM2_SOURCE:
        local = _tokenizer_copy()
        return load_chat_tokenizer(str(local)) if local is not None else None
    if Path(source).is_dir():
        return load_chat_tokenizer(source)
    return None


def _tokenizer_copy() -> Path | None:
    """This host's copy of the tokenizer files of the published SmolLM2 build, fetched
    (checksums verified) the first time a report needs them."""
    session = db()
    build = published_build(session, SMOLLM2_NAME, smollm2_source_id())
    if build is None:
        return None
    root = platform().settings.model_cache_dir / "tokenizers"
    local = root.joinpath(*build.strip("/").split("/"))
    if local.is_dir():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".fetch.", dir=local.parent))
    try:
        for name in CHAT_TOKENIZER_FILES:
            if session.get(StoredObject, build + name) is not None:
                fetch_file(session, platform().store, build + name, partial / name)
        try:
            partial.rename(local)
        except OSError:  # another request of this host fetched it meanwhile
            if not local.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return local


def chat_dataset_stats(path: Path, fmt: str) -> dict[str, Any]:
    """The upload report of a chat file; ApiError 422 naming the lines at fault."""
    stats = chat_report(path, fmt, chat_tokenizer(SMOLLM2_SOURCE), DEFAULT_MAX_LENGTH)
    stats["tokenizer"] = SMOLLM2_NAME if stats["tokens"]["basis"] == "counted" else None
    stats["estimate"] = {
        **expected_by_device(stats["tokens"]["total"], DEFAULT_EPOCHS),
        "tokens": stats["tokens"]["basis"],
    }
    return stats


def chat_report(
    path: Path, fmt: str, tokenizer: ChatTokenizer | None, max_length: int
) -> dict[str, Any]:
    """Problems (a 422 if any), warnings, counts and token statistics of one chat file."""
    from worker.training.causal_lm.estimate import chat_token_report

    reader = reader_format(fmt)
    if tokenizer is not None:
        report = chat_token_report(path, reader, tokenizer, max_length, DEFAULT_EPOCHS)
        report.pop("estimate", None)  # the caller's, with its epochs and speeds
        report["tokens"]["basis"] = "counted"
    else:
        report = chat_file_report(path, reader)
        report["tokens"] = _approximate_tokens(path, reader, report, max_length)
    if not report["valid"]:
        raise _invalid_file(report)
    for code, entry in report["warnings"].items():
        entry["message"] = WARNINGS.get(code, code)
    return report


def _approximate_tokens(
    path: Path, reader: str, report: dict[str, Any], max_length: int
) -> dict[str, Any]:
    """Token totals and over-long examples guessed from characters (no tokenizer)."""
    over: list[int] = []
    over_count = 0
    for item in iter_chat_lines(path, reader):
        if not isinstance(item, ChatExample):
            continue
        counts = {
            "examples": 1,
            "examples_with_system": int(any(m.role == "system" for m in item.messages)),
            "messages_by_role": {"all": len(item.messages)},
            "content_characters": sum(len(m.content) for m in item.messages),
        }
        if approximate_tokens(counts) > max_length:
            over_count += 1
            if len(over) < MAX_EXAMPLES:
                over.append(item.line)
    return {
        "total": approximate_tokens(report),
        "basis": "approximated",
        "max_length": max_length,
        "examples_over_max_length": {"count": over_count, "lines": over},
    }


def _invalid_file(report: dict[str, Any]) -> ApiError:
    first = report["first_problem"]
    problems = {
        code: {
            "count": entry["count"],
            "lines": entry["lines"],
            "messages": [excerpt(m, 200) for m in entry.get("messages", [])],
        }
        for code, entry in report["problems"].items()
    }
    if first is None:  # no problem line, and no example either
        return ApiError(422, "invalid_data", "file: the file holds no conversations", "file")
    more = report["invalid_lines"] - 1
    tail = f" ({more} more unusable lines: see problems)" if more else ""
    message = f"file: line {first['line']}: {excerpt(first['message'], 300)}{tail}"
    return ApiError(422, "invalid_data", message, "file", line=first["line"], problems=problems)
