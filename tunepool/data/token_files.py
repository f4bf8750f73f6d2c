"""Readers for token-classification training files (CoNLL columns and JSONL).

Both readers return `TokenExample`s with the 1-based line where each sentence
starts, and raise `DataError` naming the offending line. They are torch-free so
the API can validate an upload before a job is queued.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tunepool.data.bio import is_bio_tag
from tunepool.data.errors import DataError

BOM = "\ufeff"
FORMATS = ("conll", "jsonl")

# Only ASCII space and TAB separate columns: str.split() would also split on
# U+00A0 and other Unicode spaces that occur inside tweet tokens.
_COLUMN_SEPARATOR = re.compile(r"[ \t]+")


@dataclass
class TokenExample:
    """One sentence: words, their BIO tags, and the line where it starts."""

    tokens: list[str]
    tags: list[str]
    line: int


def read_token_examples(path: Path, fmt: str) -> list[TokenExample]:
    """Read and validate a token-classification file in `fmt` ("conll" or "jsonl")."""
    if fmt not in FORMATS:
        raise DataError(f"unknown token file format {fmt!r}; expected one of {FORMATS}")
    lines = decoded_lines(Path(path).read_bytes())
    examples = _parse_conll(lines) if fmt == "conll" else _parse_jsonl(lines)
    if not examples:
        raise DataError("the file holds no sentences")
    return examples


def decoded_lines(data: bytes) -> list[str]:
    """UTF-8 decode, reporting the line of the first bad byte; split on \\n only.

    str.splitlines() is not used: it also breaks on U+2028, U+0085, form feeds and
    others that can sit inside a token, which would shift every later label.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", line) from None
    if "\x00" in text:
        # Valid UTF-8 can still be binary; a NUL never belongs in a text file.
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError("binary data (a NUL byte); expected a text file", line)
    if not text.strip(BOM + " \t\r\n"):
        raise DataError("the file is empty")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    for number, content in enumerate(lines, start=1):
        if "\r" in content:
            # Old Mac line endings (CR only) would make the whole file one line and
            # silently glue tokens to tags; a stray CR is never meant as data.
            raise DataError(
                "a carriage return (CR) inside the line; use LF or CRLF endings", number
            )
    return lines


def _check_tag(tag: str, line: int) -> None:
    if not is_bio_tag(tag):
        raise DataError(f"tag {tag!r} is not O, B-<type> or I-<type>", line)


def _parse_conll(lines: list[str]) -> list[TokenExample]:
    examples: list[TokenExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def close_sentence() -> None:
        nonlocal tokens, tags
        if tokens:
            examples.append(TokenExample(tokens, tags, start))
        tokens, tags = [], []

    for number, raw in enumerate(lines, start=1):
        # A byte-order mark may open the file or stand alone on a line (WNUT17's
        # dev.conll ends with one); either way it is not a token.
        stripped = raw.strip(" \t").strip(BOM).strip(" \t")
        if not stripped:
            close_sentence()
            continue
        columns = _COLUMN_SEPARATOR.split(stripped)
        if columns[0] == "-DOCSTART-":
            close_sentence()
            continue
        if len(columns) < 2:
            raise DataError(f"expected a token and a tag, found one column {columns[0]!r}", number)
        tag = columns[-1]
        _check_tag(tag, number)
        if not tokens:
            start = number
        # Some exports glue a BOM to the end of a token ("Dubbz\ufeff").
        tokens.append(columns[0].rstrip(BOM))
        tags.append(tag)
    close_sentence()
    return examples


def _parse_jsonl(lines: list[str]) -> list[TokenExample]:
    examples: list[TokenExample] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.lstrip(BOM) if number == 1 else raw
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", number) from None
        if not isinstance(record, dict):
            raise DataError('expected an object {"tokens": [...], "tags": [...]}', number)
        tokens = _string_list(record, "tokens", number)
        tags = _string_list(record, "tags", number)
        if len(tokens) != len(tags):
            raise DataError(f"{len(tokens)} tokens but {len(tags)} tags", number)
        if not tokens:
            raise DataError("the sentence has no tokens", number)
        for tag in tags:
            _check_tag(tag, number)
        examples.append(TokenExample(tokens, tags, number))
    return examples


def _string_list(record: dict[str, object], key: str, line: int) -> list[str]:
    value = record.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f'"{key}" must be a list of strings', line)
    return list(value)
