"""Readers for text-classification files (CSV/TSV with a header, JSONL) and unlabeled text.

Like the token readers they are torch-free, keep the 1-based line of every example
and raise `DataError` naming the offending line.

Which CSV/TSV columns hold the text and the label: the header names them. A column
named `text` (any case) is the text and one named `label` the label; callers may name
other columns explicitly. When the header has exactly two columns and one is `label`,
the other is the text, which reads the SMS Spam Collection's `Label<TAB>SMS` as it is.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tunepool.data.errors import DataError
from tunepool.data.token_files import BOM, text_lines
from tunepool.quoting import quoted

CLASSIFICATION_FORMATS = ("csv", "tsv", "jsonl")
CORPUS_FORMATS = ("text", "jsonl")


@dataclass
class TextExample:
    """One labelled text and the line it starts on."""

    text: str
    label: str
    line: int


@dataclass
class TextDocument:
    """One unlabeled document (masked-LM data) and its line."""

    text: str
    line: int


def read_text_examples(
    path: Path,
    fmt: str,
    text_column: str | None = None,
    label_column: str | None = None,
) -> list[TextExample]:
    """Read and validate a sequence-classification file in `fmt` (csv, tsv or jsonl)."""
    examples = list(iter_text_examples(path, fmt, text_column, label_column))
    if not examples:
        raise DataError("the file holds no examples")
    return examples


def iter_text_examples(
    path: Path,
    fmt: str,
    text_column: str | None = None,
    label_column: str | None = None,
) -> Iterator[TextExample]:
    """The examples of a sequence-classification file, read one line at a time."""
    if fmt not in CLASSIFICATION_FORMATS:
        raise DataError(
            f"unknown classification file format {quoted(fmt)}; "
            f"expected one of {CLASSIFICATION_FORMATS}"
        )
    lines = _lines(path)
    if fmt == "jsonl":
        return _parse_jsonl(lines, text_column or "text", label_column or "label")
    return _parse_table(lines, "," if fmt == "csv" else "\t", text_column, label_column)


def _lines(path: Path) -> Iterator[str]:
    """The file's lines (see `text_lines`), a byte-order mark opening the file dropped."""
    for number, line in text_lines(path):
        yield line.lstrip(BOM) if number == 1 else line


def read_text_documents(path: Path, fmt: str) -> list[TextDocument]:
    """Unlabeled text: one document per non-empty line ("text") or JSONL {"text": ...}."""
    documents = list(iter_text_documents(path, fmt))
    if not documents:
        raise DataError("the file holds no documents")
    return documents


def iter_text_documents(path: Path, fmt: str) -> Iterator[TextDocument]:
    """The documents of an unlabeled corpus, read one line at a time."""
    if fmt not in CORPUS_FORMATS:
        raise DataError(
            f"unknown text corpus format {quoted(fmt)}; expected one of {CORPUS_FORMATS}"
        )
    return _documents(path, fmt)


def _documents(path: Path, fmt: str) -> Iterator[TextDocument]:
    for number, raw in text_lines(path):
        text = raw.strip(BOM) if number == 1 else raw
        if not text.strip():
            continue
        if fmt == "jsonl":
            record = _json_object(text, number, '{"text": "..."}')
            text = _string_field(record, "text", number)
        if BOM in text:
            raise DataError("a byte-order mark (U+FEFF) inside the text", number)
        yield TextDocument(text.strip(), number)


def _parse_jsonl(lines: Iterable[str], text_key: str, label_key: str) -> Iterator[TextExample]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        record = _json_object(raw, number, f'{{"{text_key}": "...", "{label_key}": "..."}}')
        text = _string_field(record, text_key, number)
        label = record.get(label_key)
        # Integer class ids are common in exported data; they become label names.
        if isinstance(label, bool) or not isinstance(label, str | int):
            raise DataError(f'"{label_key}" must be a string or an integer', number)
        yield _example(text, str(label), number)


def _parse_table(
    lines: Iterator[str], delimiter: str, text_column: str | None, label_column: str | None
) -> Iterator[TextExample]:
    first = next(lines, None)
    if first is None or not first.strip():
        raise DataError("the first line must be a header naming the text and label columns", 1)
    rows = itertools.chain([first], lines)
    # TSV has no quoting convention (SMS texts hold bare quotes); CSV follows RFC 4180.
    if delimiter == ",":
        reader = csv.reader(rows, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    else:
        reader = csv.reader(rows, delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"unreadable header: {exc}", 1) from None
    text_at, label_at = _columns(header, text_column, label_column, delimiter)
    while True:
        # A quoted field may span lines: a row is named by the line it starts on.
        number = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"malformed CSV (an unclosed quote?): {exc}", number) from None
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            separator = "commas" if delimiter == "," else "tabs"
            raise DataError(
                f"expected {len(header)} columns separated by {separator}, found {len(row)}",
                number,
            )
        yield _example(row[text_at], row[label_at], number)


def _columns(
    header: list[str], text_column: str | None, label_column: str | None, delimiter: str
) -> tuple[int, int]:
    names = [name.strip().lower() for name in header]
    if len(names) < 2:
        separator = "a comma" if delimiter == "," else "a TAB"
        raise DataError(f"the header must name at least two columns separated by {separator}", 1)

    def find(wanted: str) -> int | None:
        return names.index(wanted.lower()) if wanted.lower() in names else None

    label_at = find(label_column or "label")
    text_at = find(text_column or "text")
    if text_at is None and text_column is None and len(names) == 2 and label_at is not None:
        text_at = 1 - label_at  # the documented two-column rule (`Label<TAB>SMS`)
    if label_at is None or text_at is None:
        missing = "label" if label_at is None else "text"
        wanted = (label_column or "label") if label_at is None else (text_column or "text")
        raise DataError(
            f"the header {quoted(header)} has no {missing} column named {quoted(wanted)}", 1
        )
    if label_at == text_at:
        raise DataError("the text and label columns must differ", 1)
    return text_at, label_at


def _example(text: str, label: str, line: int) -> TextExample:
    if not text.strip():
        raise DataError("the text is empty", line)
    if not label.strip():
        raise DataError("the label is empty", line)
    return TextExample(text, label.strip(), line)


def _json_object(raw: str, line: int, shape: str) -> dict[str, object]:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} at column {exc.colno}", line) from None
    if not isinstance(record, dict):
        raise DataError(f"expected an object {shape}", line)
    return record


def _string_field(record: dict[str, object], key: str, line: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise DataError(f'"{key}" must be a string', line)
    return value
