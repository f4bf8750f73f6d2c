"""The upload report of a chat file: problems by line, warnings, counts, tokens, dry run.

``chat_upload_stats`` needs no tokenizer: it counts what ``chat_file_report`` counts
and approximates the tokens from characters (``tunepool.chat_estimates``), labelled
``"basis": "approximated"``. Where the chat model's tokenizer is at hand, the engine's
``chat_token_report`` counts them exactly and ``finish_chat_report`` gives that report
the same shape (``"basis": "counted"``). A file with any unusable line raises
``ChatFileInvalid``, a ``DataError`` naming the first line that also carries every kind
of problem with its lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunepool.chat_estimates import (
    DEFAULT_EPOCHS,
    DEFAULT_MAX_LENGTH,
    approximate_tokens,
    expected_by_device,
)
from tunepool.data.chat import ChatExample, iter_chat_lines
from tunepool.data.chat_report import chat_file_report
from tunepool.data.errors import DataError
from tunepool.data.stats import MAX_EXAMPLES
from tunepool.quoting import excerpt

# A chat dataset's formats: `chat` detects the format from the first line (the chat
# readers' "auto"); the others hold every line to theirs.
CHAT_DATASET_FORMATS = ("chat", "openai", "sharegpt", "alpaca")
WARNINGS = {
    "tools_ignored": "tool definitions, tool calls and tool messages are not trained: "
    "they were left out of these lines"
}


class ChatFileInvalid(DataError):
    """Unusable lines: the first named in the message and ``line``, every kind with its
    first lines in ``problems``."""

    def __init__(self, message: str, line: int | None, problems: dict[str, Any]) -> None:
        super().__init__(message, line)
        self.problems = problems


def reader_format(fmt: str) -> str:
    """The chat readers' name for a dataset's format."""
    return "auto" if fmt == "chat" else fmt


def chat_upload_stats(path: Path, fmt: str, max_length: int = DEFAULT_MAX_LENGTH) -> dict[str, Any]:
    """The report of a chat file without a tokenizer; ChatFileInvalid if a line is bad."""
    reader = reader_format(fmt)
    report = chat_file_report(path, reader)
    if report["valid"]:
        report["tokens"] = _approximate_tokens(path, reader, report, max_length)
    return finish_chat_report(report, tokenizer=None)


def finish_chat_report(report: dict[str, Any], tokenizer: str | None) -> dict[str, Any]:
    """Raise ChatFileInvalid for a report with problems; else add the warnings' meaning,
    the tokenizer's name (None: approximated) and the dry run at the default epochs."""
    if not report["valid"]:
        raise _invalid(report)
    for code, entry in report["warnings"].items():
        entry["message"] = WARNINGS.get(code, code)
    report["tokens"]["basis"] = "counted" if tokenizer else "approximated"
    report["tokenizer"] = tokenizer
    report["estimate"] = {
        **expected_by_device(report["tokens"]["total"], DEFAULT_EPOCHS),
        "tokens": report["tokens"]["basis"],
    }
    return report


def _approximate_tokens(
    path: Path, reader: str, report: dict[str, Any], max_length: int
) -> dict[str, Any]:
    """Token totals and over-long examples guessed from characters."""
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
        "max_length": max_length,
        "examples_over_max_length": {"count": over_count, "lines": over},
    }


def _invalid(report: dict[str, Any]) -> ChatFileInvalid:
    problems = {
        code: {
            "count": entry["count"],
            "lines": entry["lines"],
            "messages": [excerpt(m, 200) for m in entry.get("messages", [])],
        }
        for code, entry in report["problems"].items()
    }
    first = report["first_problem"]
    if first is None:  # no problem line, and no example either
        return ChatFileInvalid("the file holds no conversations", None, problems)
    more = report["invalid_lines"] - 1
    tail = f" ({more} more unusable lines: see problems)" if more else ""
    return ChatFileInvalid(f"{excerpt(first['message'], 300)}{tail}", first["line"], problems)
