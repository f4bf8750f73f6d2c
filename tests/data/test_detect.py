"""``datasets upload`` reads the task and format from the content (tunepool.data.detect)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunepool.data.detect import detect
from tunepool.data.errors import DataError
from tunepool.synthetic import conll_text

CASES = {
    "ner.conll": (conll_text(5, seed=1), "token-classification", "conll"),
    # A name says nothing: CoNLL in a .txt file, tab-separated.
    "ner.txt": ("John\tB-PER\nlives\tO\n\nParis\tB-LOC\n", "token-classification", "conll"),
    "ner.jsonl": (
        json.dumps({"tokens": ["John"], "tags": ["B-PER"]}) + "\n",
        "token-classification",
        "jsonl",
    ),
    "spam.csv": ("text,label\nwin money,spam\nhi mum,ham\n", "sequence-classification", "csv"),
    "spam.tsv": ("Label\tSMS\nspam\twin money\n", "sequence-classification", "tsv"),
    "spam.jsonl": (
        json.dumps({"text": "win", "label": "spam"}) + "\n",
        "sequence-classification",
        "jsonl",
    ),
    "chat.jsonl": (
        json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n",
        "causal-lm",
        "jsonl",
    ),
    "sharegpt.json": (
        json.dumps({"conversations": [{"from": "human", "value": "hi"}]}) + "\n",
        "causal-lm",
        "jsonl",
    ),
    "alpaca.jsonl": (
        json.dumps({"instruction": "say hi", "output": "hi"}) + "\n",
        "causal-lm",
        "jsonl",
    ),
    "corpus.jsonl": (json.dumps({"text": "a document"}) + "\n", "masked-lm", "jsonl"),
    "corpus.txt": ("One document.\nAnother one, longer.\n", "masked-lm", "text"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_content_decides(tmp_path: Path, name: str) -> None:
    text, task, fmt = CASES[name]
    path = tmp_path / name
    path.write_text(text)
    found = detect(path)
    assert (found.task, found.format) == (task, fmt)


def test_a_given_format_is_trusted(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text(json.dumps({"prompt": "hi"}) + "\n")
    assert detect(path, "chat").task == "causal-lm"
    with pytest.raises(DataError, match="expected messages"):
        detect(path)


def test_empty_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="empty"):
        detect(empty)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"tokens": [\n')
    with pytest.raises(DataError, match="line 1"):
        detect(broken)
