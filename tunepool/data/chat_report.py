"""The validation report of a chat file: every problem with its line, and counts.

It streams the file (`iter_chat_lines`), so it holds counters and at most
`MAX_EXAMPLES` line numbers per kind, whatever the file's size. Token statistics
and the dry-run estimate need the model's tokenizer and live with the engine
(`worker.training.causal_lm.estimate`); this part is torch-free for the API.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tunepool.data.chat import ChatProblem, iter_chat_lines
from tunepool.data.stats import MAX_EXAMPLES


def chat_file_report(path: Path, fmt: str = "auto") -> dict[str, Any]:
    """Counts of examples, turns and roles; problems and warnings by kind with lines.

    `valid` is True when every non-blank line is a usable conversation.
    """
    problems: dict[str, dict[str, Any]] = {}
    warnings: dict[str, dict[str, Any]] = {}
    roles: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    examples = trained_turns = weight_zero_turns = with_system = characters = 0
    first_problem: dict[str, Any] | None = None
    for item in iter_chat_lines(path, fmt):
        if isinstance(item, ChatProblem):
            if first_problem is None:
                first_problem = {"line": item.line, "code": item.code, "message": item.message}
            _note(problems, item.code, item.line, item.message)
            continue
        examples += 1
        formats[item.format] += 1
        roles.update(message.role for message in item.messages)
        trained_turns += item.trained_turns
        weight_zero_turns += sum(
            1 for m in item.messages if m.role == "assistant" and m.weight == 0
        )
        with_system += any(m.role == "system" for m in item.messages)
        characters += sum(len(m.content) for m in item.messages)
        for code in item.warnings:
            _note(warnings, code, item.line, None)
    return {
        "valid": not problems and examples > 0,
        "format": formats.most_common(1)[0][0] if formats else None,
        "examples": examples,
        "invalid_lines": sum(entry["count"] for entry in problems.values()),
        "first_problem": first_problem,
        "problems": problems,
        "warnings": warnings,
        "messages_by_role": dict(sorted(roles.items())),
        "trained_assistant_turns": trained_turns,
        "weight_zero_assistant_turns": weight_zero_turns,
        "examples_with_system": with_system,
        # Of the messages' text: a token count's rough stand-in where no tokenizer is at hand.
        "content_characters": characters,
    }


def _note(table: dict[str, dict[str, Any]], code: str, line: int, message: str | None) -> None:
    entry = table.setdefault(code, {"count": 0, "lines": []})
    entry["count"] += 1
    if len(entry["lines"]) < MAX_EXAMPLES:
        entry["lines"].append(line)
        if message is not None:
            entry.setdefault("messages", []).append(message)
