"""Readers for chat fine-tuning data: OpenAI chat JSONL, ShareGPT and Alpaca.

Every format becomes the same `ChatExample` (a list of system/user/assistant
messages, each with a 0/1 training weight) so the engine renders all of them with
the model's own chat template. Files are read line by line: a validation report
over a large upload holds one line at a time, never the whole file.

Like the other readers they keep the 1-based line of every example; `read_chat_examples`
raises `DataError` at the first unusable line, `iter_chat_lines` yields every
problem as a value so a report can list them all.

Tool use is not trained: a `tools`/`functions` field, `tool_calls`/`function_call`
on a message and `tool`/`function` messages are dropped, and each line where that
happened is named under the warning `tools_ignored`, so a user sees what was left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunepool.data.errors import DataError

CHAT_FORMATS = ("openai", "sharegpt", "alpaca")
ROLES = ("system", "user", "assistant")
TOOLS_IGNORED = "tools_ignored"
# ShareGPT speakers as they occur in the wild, mapped to chat roles.
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
_TOOL_ROLES = ("tool", "function")
_TOOL_FIELDS = ("tools", "functions")
_MESSAGE_TOOL_FIELDS = ("tool_calls", "function_call")


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str
    # OpenAI's per-message weight: 0 keeps an assistant turn as context without loss.
    weight: int = 1


@dataclass(frozen=True)
class ChatExample:
    """One conversation and the line it was read from."""

    messages: tuple[ChatMessage, ...]
    line: int
    format: str  # the file format it was read from (one of CHAT_FORMATS)
    warnings: tuple[str, ...] = ()

    @property
    def trained_turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "assistant" and m.weight == 1)


@dataclass(frozen=True)
class ChatProblem:
    """Why one line cannot be used; `code` names the kind for counting."""

    code: str
    message: str
    line: int

    def error(self) -> DataError:
        return DataError(self.message, self.line)


@dataclass
class ChatData:
    examples: list[ChatExample]
    format: str
    warnings: dict[str, list[int]] = field(default_factory=dict)  # code -> lines


def detect_chat_format(record: dict[str, Any]) -> str | None:
    """The format one JSON object is in, from its keys; None when none fits."""
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    return None


def iter_chat_lines(path: Path, fmt: str = "auto") -> Iterator[ChatExample | ChatProblem]:
    """Each non-blank line as an example or a problem; `fmt` "auto" detects the format
    from the first JSON object and holds every later line to it."""
    if fmt != "auto" and fmt not in CHAT_FORMATS:
        raise DataError(f"unknown chat format {fmt!r}; expected 'auto' or one of {CHAT_FORMATS}")
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield ChatProblem("bad_encoding", f"not valid UTF-8 at byte {exc.start}", number)
                continue
            if number == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                message = f"invalid JSON: {exc.msg} at column {exc.colno}"
                yield ChatProblem("bad_json", message, number)
                continue
            if not isinstance(record, dict):
                yield ChatProblem("bad_json", "expected one JSON object per line", number)
                continue
            if fmt == "auto":
                detected = detect_chat_format(record)
                if detected is None:
                    message = (
                        'no "messages" (OpenAI), "conversations" (ShareGPT) or '
                        '"instruction"/"output" (Alpaca) field'
                    )
                    yield ChatProblem("unknown_format", message, number)
                    continue
                fmt = detected
            yield _parse_record(record, fmt, number)


def read_chat_examples(path: Path, fmt: str = "auto") -> ChatData:
    """Every example of a chat file; the first unusable line raises `DataError`."""
    examples: list[ChatExample] = []
    warnings: dict[str, list[int]] = {}
    for item in iter_chat_lines(path, fmt):
        if isinstance(item, ChatProblem):
            raise item.error()
        examples.append(item)
        for code in item.warnings:
            warnings.setdefault(code, []).append(item.line)
    if not examples:
        raise DataError("the file holds no conversations")
    return ChatData(examples, examples[0].format, warnings)


def _parse_record(record: dict[str, Any], fmt: str, line: int) -> ChatExample | ChatProblem:
    warnings: list[str] = []
    if fmt == "openai":
        parsed = _openai_messages(record, line, warnings)
    elif fmt == "sharegpt":
        parsed = _sharegpt_messages(record, line)
    else:
        parsed = _alpaca_messages(record, line)
    if isinstance(parsed, ChatProblem):
        return parsed
    if not any(m.role == "assistant" for m in parsed):
        return ChatProblem("no_assistant", "the conversation has no assistant turn", line)
    if not any(m.role == "assistant" and m.weight == 1 for m in parsed):
        message = "every assistant turn has weight 0: nothing to learn from"
        return ChatProblem("no_assistant", message, line)
    return ChatExample(tuple(parsed), line, fmt, tuple(warnings))


def _openai_messages(
    record: dict[str, Any], line: int, warnings: list[str]
) -> list[ChatMessage] | ChatProblem:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return ChatProblem("missing_field", '"messages" must be a non-empty list', line)
    tools = any(key in record for key in _TOOL_FIELDS)
    parsed: list[ChatMessage] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return ChatProblem("bad_message", f"{where} must be an object", line)
        role = message.get("role")
        if role in _TOOL_ROLES:
            tools = True
            continue
        if role not in ROLES:
            expected = ", ".join(ROLES)
            return ChatProblem("bad_role", f"{where}.role {role!r} is not one of {expected}", line)
        if any(key in message for key in _MESSAGE_TOOL_FIELDS):
            tools = True
            if not message.get("content"):
                continue  # a pure tool call: nothing left to train on
        content = _content_text(message.get("content"))
        if content is None:
            return ChatProblem("bad_content", f"{where}.content must be text", line)
        if not content.strip():
            return ChatProblem("empty_content", f"{where}.content is empty", line)
        weight = message.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            return ChatProblem("bad_weight", f"{where}.weight must be 0 or 1", line)
        if weight == 0 and role != "assistant":
            message_text = f"{where}.weight is only allowed on assistant messages"
            return ChatProblem("bad_weight", message_text, line)
        parsed.append(ChatMessage(role, content, int(weight)))
    if tools:
        warnings.append(TOOLS_IGNORED)
    return parsed


def _content_text(content: Any) -> str | None:
    """A string, or OpenAI's list of content parts when every part is text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return "".join(part["text"] for part in content)
    return None


def _sharegpt_messages(record: dict[str, Any], line: int) -> list[ChatMessage] | ChatProblem:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        return ChatProblem("missing_field", '"conversations" must be a non-empty list', line)
    parsed: list[ChatMessage] = []
    for index, turn in enumerate(turns):
        where = f"conversations[{index}]"
        if not isinstance(turn, dict):
            return ChatProblem("bad_message", f"{where} must be an object", line)
        speaker = turn.get("from")
        role = _SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            message = f"{where}.from {speaker!r} is not one of human, gpt, system"
            return ChatProblem("bad_role", message, line)
        value = turn.get("value")
        if not isinstance(value, str):
            return ChatProblem("bad_content", f"{where}.value must be a string", line)
        if not value.strip():
            return ChatProblem("empty_content", f"{where}.value is empty", line)
        parsed.append(ChatMessage(role, value))
    return parsed


def _alpaca_messages(record: dict[str, Any], line: int) -> list[ChatMessage] | ChatProblem:
    fields: dict[str, str] = {}
    for key in ("instruction", "input", "output", "system"):
        value = record.get(key, "")
        if not isinstance(value, str):
            return ChatProblem("bad_content", f'"{key}" must be a string', line)
        fields[key] = value
    if not fields["instruction"].strip():
        return ChatProblem("empty_content", '"instruction" is empty', line)
    if not fields["output"].strip():
        return ChatProblem("empty_content", '"output" is empty', line)
    # Stanford Alpaca's own rule: the input follows the instruction after a blank line.
    prompt = fields["instruction"]
    if fields["input"].strip():
        prompt = f"{prompt}\n\n{fields['input']}"
    parsed = [ChatMessage("user", prompt), ChatMessage("assistant", fields["output"])]
    if fields["system"].strip():
        parsed.insert(0, ChatMessage("system", fields["system"]))
    return parsed
