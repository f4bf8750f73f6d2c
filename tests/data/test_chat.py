"""Chat readers: three formats to one shape, problems named by line, tools ignored loudly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tunepool.data.chat import ChatMessage, read_chat_examples
from tunepool.data.chat_report import chat_file_report
from tunepool.data.errors import DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "chat"


def write_lines(path: Path, rows: list[object]) -> Path:
    text = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    path.write_text(text, encoding="utf-8")
    return path


def test_openai_weights_and_parts(tmp_path):
    path = write_lines(
        tmp_path / "a.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                    {"role": "assistant", "content": "Hello!", "weight": 0},
                    {"role": "user", "content": "Again"},
                    {"role": "assistant", "content": "Hello again."},
                ]
            }
        ],
    )
    data = read_chat_examples(path)
    assert data.format == "openai"
    (example,) = data.examples
    assert example.messages[1] == ChatMessage("user", "Hi")
    assert [m.weight for m in example.messages if m.role == "assistant"] == [0, 1]
    assert example.trained_turns == 1


def test_sharegpt_and_alpaca_become_chat_messages(tmp_path):
    sharegpt = write_lines(
        tmp_path / "s.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "S"},
                    {"from": "human", "value": "Q"},
                    {"from": "gpt", "value": "A"},
                ]
            }
        ],
    )
    alpaca = write_lines(
        tmp_path / "a.jsonl",
        [{"instruction": "Translate", "input": "chat", "output": "cat"}],
    )
    shared = read_chat_examples(sharegpt)
    assert shared.format == "sharegpt"
    assert [m.role for m in shared.examples[0].messages] == ["system", "user", "assistant"]
    alpaca_data = read_chat_examples(alpaca, "alpaca")
    assert alpaca_data.examples[0].messages == (
        ChatMessage("user", "Translate\n\nchat"),
        ChatMessage("assistant", "cat"),
    )


def test_tools_are_dropped_with_a_named_warning(tmp_path):
    path = write_lines(
        tmp_path / "t.jsonl",
        [
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
            {
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                    {"role": "tool", "content": "sunny", "tool_call_id": "1"},
                    {"role": "assistant", "content": "Sunny."},
                ],
            },
        ],
    )
    data = read_chat_examples(path)
    assert data.warnings == {"tools_ignored": [2]}
    assert [m.role for m in data.examples[1].messages] == ["user", "assistant"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"messages": [', "invalid JSON"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role 'bot'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": " "}]},
            "messages[1].content is empty",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": 2},
                ]
            },
            "weight must be 0 or 1",
        ),
        ({"conversations": [{"from": "robot", "value": "x"}]}, "from 'robot'"),
        # The first line fixed the format: a later line in another shape is named.
        ({"prompt": "x", "completion": "y"}, '"messages" must be a non-empty list'),
    ],
)
def test_bad_lines_raise_with_their_line(tmp_path, row, message):
    good = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
    if "conversations" in str(row):
        good = {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]}
    path = write_lines(tmp_path / "bad.jsonl", [good, "", row])
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        read_chat_examples(path)
    assert caught.value.line == 3


def test_report_counts_every_problem_by_line(tmp_path):
    good = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            good,
            "{not json",
            {"messages": [{"role": "user", "content": "only a question"}]},
            good,
            {"messages": [{"role": "narrator", "content": "x"}]},
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]},
        ],
    )
    report = chat_file_report(path)
    assert report["valid"] is False
    assert report["examples"] == 2
    assert report["invalid_lines"] == 4
    assert report["first_problem"]["line"] == 2
    assert {code: entry["lines"] for code, entry in report["problems"].items()} == {
        "bad_json": [2],
        "no_assistant": [3],
        "bad_role": [5],
        "empty_content": [6],
    }


@pytest.mark.skipif(not (SHARED / "sms_spam_test.jsonl").exists(), reason="shared data absent")
def test_shared_chat_files_are_valid():
    report = chat_file_report(SHARED / "sms_spam_test.jsonl")
    assert report["valid"] and report["format"] == "openai"
    assert report["examples"] == 981
    assert report["messages_by_role"] == {"assistant": 981, "user": 981}
