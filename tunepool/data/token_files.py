"""Readers for token-classification training files (CoNLL columns and JSONL).

Both readers yield `TokenExample`s with the 1-based line where each sentence
starts, reading one line at a time, and raise `DataError` naming the offending
line. They are torch-free so the API can validate an upload before a job is queued.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tunepool.data.bio import is_bio_tag
from tunepool.data.errors import DataError
from tunepool.quoting import quoted

BOM = "\ufeff"
FORMATS = ("conll", "jsonl")
# A longer line is refused rather than read whole (a sentence per line is far shorter;
# a 50 MB line of junk is not data).
MAX_LINE_BYTES = 1024 * 1024

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
    examples = list(iter_token_examples(path, fmt))
    if not examples:
        raise DataError("the file holds no sentences")
    return examples


def iter_token_examples(path: Path, fmt: str) -> Iterator[TokenExample]:
    """The sentences of a token-classification file, read and checked one line at a time:
    an upload is validated in bounded memory, whatever its size (issue 20)."""
    if fmt not in FORMATS:
        raise DataError(f"unknown token file format {quoted(fmt)}; expected one of {FORMATS}")
    lines = text_lines(path)
    return _parse_conll(lines) if fmt == "conll" else _parse_jsonl(lines)


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based number, text) of each line of a UTF-8 file, read one line at a time.

    Split on \\n only: str.splitlines() would also break on U+2028, U+0085, form feeds
    and others that can sit inside a token, which would shift every later label. A CRLF
    ending is dropped. DataError names the line of a bad byte, a NUL, a stray CR, or a
    line longer than MAX_LINE_BYTES; after the last line, "the file is empty" when
    nothing but whitespace was read.
    """
    content = False
    number = 0
    with Path(path).open("rb") as f:
        while raw := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"the line is longer than {MAX_LINE_BYTES // 1024} KiB", number)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})", number) from None
            if "\x00" in line:
                # Valid UTF-8 can still be binary; a NUL never belongs in a text file.
                raise DataError("binary data (a NUL byte); expected a text file", number)
            line = line.removesuffix("\n").removesuffix("\r")
            if "\r" in line:
                # Old Mac line endings (CR only) would make the whole file one line and
                # silently glue tokens to tags; a stray CR is never meant as data.
                raise DataError(
                    "a carriage return (CR) inside the line; use LF or CRLF endings", number
                )
            content = content or bool(line.strip(BOM + " \t"))
            yield number, line
    if not content:
        raise DataError("the file is empty")


def _check_tag(tag: str, line: int) -> None:
    if not is_bio_tag(tag):
        raise DataError(f"tag {quoted(tag)} is not O, B-<type> or I-<type>", line)


def _parse_conll(lines: Iterable[tuple[int, str]]) -> Iterator[TokenExample]:
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, raw in lines:
        # A byte-order mark may open the file or stand alone on a line (WNUT17's
        # dev.conll ends with one); either way it is not a token.
        stripped = raw.strip(" \t").strip(BOM).strip(" \t")
        columns = _COLUMN_SEPARATOR.split(stripped) if stripped else []
        if not columns or columns[0] == "-DOCSTART-":
            if tokens:
                yield TokenExample(tokens, tags, start)
            tokens, tags = [], []
            continue
        if len(columns) < 2:
            raise DataError(
                f"expected a token and a tag, found one column {quoted(columns[0])}", number
            )
        tag = columns[-1]
        _check_tag(tag, number)
        if not tokens:
            start = number
        # Some exports glue a BOM to the end of a token ("Dubbz\ufeff").
        tokens.append(columns[0].rstrip(BOM))
        tags.append(tag)
    if tokens:
        yield TokenExample(tokens, tags, start)


def _parse_jsonl(lines: Iterable[tuple[int, str]]) -> Iterator[TokenExample]:
    for number, raw in lines:
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
        yield TokenExample(tokens, tags, number)


def _string_list(record: dict[str, object], key: str, line: int) -> list[str]:
    value = record.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f'"{key}" must be a list of strings', line)
    return list(value)
