"""Which task and format a data file is, from its first lines, for ``datasets upload``.

The file's name is no guide (``train.txt`` may hold CoNLL, ``data.json`` JSONL), so the
content decides; a user may still say ``--format`` and ``--task``. Only a few lines
are read: the API checks the whole file and names the first bad line.

- JSONL: the keys of the first record: ``messages`` (OpenAI chat), ``conversations``
  (ShareGPT) or ``instruction``/``output`` (Alpaca) are chat data for ``causal-lm``;
  ``tokens``/``tags`` token classification; ``text`` with ``label`` sequence
  classification; ``text`` alone unlabeled text for ``masked-lm``.
- CSV/TSV: a header row naming a ``label`` column, split by commas or tabs.
- CoNLL: lines of a word and its BIO tag (``O``, ``B-…``, ``I-…``) as the last column,
  sentences apart by blank lines.
- Anything else readable: one document per line, for ``masked-lm``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tunepool.data.errors import DataError

SAMPLE_LINES = 50
CHAT_TASK = "causal-lm"
# What ``--format`` may say: the API's formats, and ``chat`` for chat JSONL.
FORMAT_CHOICES = ("conll", "jsonl", "csv", "tsv", "text", "chat")
BIO_TAG = re.compile(r"^(O|[BIES]-\S+)$")


@dataclass(frozen=True)
class Detected:
    task: str
    format: str  # as the API names it: conll, jsonl, csv, tsv or text
    why: str  # for the user: what in the file said so


def detect(path: Path, fmt: str | None = None) -> Detected:
    """The task and format of the file at ``path``; ``fmt`` (from ``--format``) is
    trusted for the format and only the task is read from the content."""
    lines = _sample(path)
    if not lines:
        raise DataError("the file is empty")
    if fmt == "chat":
        return Detected(CHAT_TASK, "jsonl", "--format chat")
    if fmt in ("csv", "tsv"):
        return Detected("sequence-classification", fmt, f"--format {fmt}")
    if fmt == "conll":
        return Detected("token-classification", "conll", "--format conll")
    if fmt == "text":
        return Detected("masked-lm", "text", "--format text")
    first = lines[0]
    if fmt == "jsonl" or first.startswith("{"):
        return _jsonl(first)
    header = _header(first)
    if header is not None:
        return header
    if _looks_like_conll(lines):
        return Detected("token-classification", "conll", "words with BIO tags")
    return Detected("masked-lm", "text", "plain text, one document per line")


def _sample(path: Path) -> list[str]:
    lines: list[str] = []
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as data:
        for raw in data:
            line = raw.rstrip("\r\n")
            if line.strip() or lines:  # leading blank lines say nothing
                lines.append(line)
            if len(lines) >= SAMPLE_LINES:
                break
    return lines


def _jsonl(first: str) -> Detected:
    try:
        record = json.loads(first)
    except ValueError:
        raise DataError("line 1 starts like JSON but is not a JSON object") from None
    if not isinstance(record, dict):
        raise DataError("line 1: expected one JSON object per line")
    keys = set(record)
    if "messages" in keys:
        return Detected(CHAT_TASK, "jsonl", 'chat JSONL ("messages")')
    if "conversations" in keys:
        return Detected(CHAT_TASK, "jsonl", 'ShareGPT JSONL ("conversations")')
    if {"instruction", "output"} <= keys:
        return Detected(CHAT_TASK, "jsonl", 'Alpaca JSONL ("instruction", "output")')
    if {"tokens", "tags"} <= keys:
        return Detected("token-classification", "jsonl", 'JSONL with "tokens" and "tags"')
    if {"text", "label"} <= keys:
        return Detected("sequence-classification", "jsonl", 'JSONL with "text" and "label"')
    if "text" in keys:
        return Detected("masked-lm", "jsonl", 'JSONL with "text" only')
    shown = ", ".join(sorted(keys)[:6]) or "none"
    raise DataError(
        f"line 1: a JSON object with keys {shown}; expected messages (chat), tokens/tags "
        "(NER), text/label (classification) or text (unlabeled)"
    )


def _header(first: str) -> Detected | None:
    for fmt, delimiter in (("tsv", "\t"), ("csv", ",")):
        if delimiter not in first:
            continue
        columns = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter))]
        if "label" in columns and len(columns) >= 2:
            return Detected("sequence-classification", fmt, f"a header naming {columns}")
    return None


def _looks_like_conll(lines: list[str]) -> bool:
    rows = [line.split() for line in lines if line.strip() and not line.startswith("-DOCSTART-")]
    tagged = [row for row in rows if len(row) >= 2 and BIO_TAG.match(row[-1])]
    return bool(rows) and len(tagged) >= 0.9 * len(rows)
