"""Line-level findings in an accepted file: what a parser tolerates but a user should see.

Readers reject what cannot be used (invalid UTF-8, NUL bytes, broken JSON...).
What they tolerate is reported here with line numbers: Windows line endings, a
byte-order mark on a line of its own (WNUT-17's dev.conll has one), lines of only
spaces, runs of empty lines, and text that was decoded with the wrong encoding
before it was saved as UTF-8 (U+FFFD, or mojibake such as "Ã©").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunepool.data.stats import LineList

BOM = "\ufeff"
# UTF-8 read as Latin-1/cp1252 and saved again: "é" -> "Ã©", "'" -> "â€™".
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac")


def file_findings(data: bytes) -> dict[str, Any]:
    """Counts and first line numbers of tolerated oddities; `data` is valid UTF-8."""
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return line_findings(lines)


def findings_in_file(path: Path) -> dict[str, Any]:
    """`file_findings` of a file that its reader accepted, read one line at a time."""
    with Path(path).open("rb") as f:
        return line_findings(raw.decode("utf-8").removesuffix("\n") for raw in f)


def line_findings(lines: Iterable[str]) -> dict[str, Any]:
    """The findings over `lines` (each without its \\n, with a CR if it had one)."""
    count = crlf = 0
    starts_with_bom = False
    found = {
        key: LineList()
        for key in (
            "bom_lines",
            "whitespace_only_lines",
            "extra_empty_lines",
            "replacement_characters",
            "mojibake",
        )
    }
    previous_empty = False
    for number, raw in enumerate(lines, start=1):
        count += 1
        crlf += raw.endswith("\r")
        starts_with_bom = starts_with_bom or (number == 1 and raw.startswith(BOM))
        line = raw.rstrip("\r")
        if BOM in line and not (number == 1 and line.startswith(BOM) and BOM not in line[1:]):
            found["bom_lines"].add(number)
        stripped = line.strip(BOM)
        empty = not stripped
        if stripped and not stripped.strip(" \t"):
            found["whitespace_only_lines"].add(number)
        if empty and previous_empty:
            found["extra_empty_lines"].add(number)
        if "\ufffd" in line:
            found["replacement_characters"].add(number)
        if _MOJIBAKE.search(line):
            found["mojibake"].add(number)
        previous_empty = empty or not stripped.strip(" \t")
    report: dict[str, Any] = {
        "lines": count,
        "line_endings": "crlf" if crlf == count and count else "mixed" if crlf else "lf",
        "starts_with_bom": starts_with_bom,
    }
    report.update({key: lines_of.result() for key, lines_of in found.items()})
    return report
