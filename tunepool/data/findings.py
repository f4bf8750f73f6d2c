"""Line-level findings in an accepted file: what a parser tolerates but a user should see.

Readers reject what cannot be used (invalid UTF-8, NUL bytes, broken JSON...).
What they tolerate is reported here with line numbers: Windows line endings, a
byte-order mark on a line of its own (WNUT-17's dev.conll has one), lines of only
spaces, runs of empty lines, and text that was decoded with the wrong encoding
before it was saved as UTF-8 (U+FFFD, or mojibake such as "Ã©").
"""

from __future__ import annotations

import re
from typing import Any

from tunepool.data.stats import MAX_EXAMPLES

BOM = "\ufeff"
# UTF-8 read as Latin-1/cp1252 and saved again: "é" -> "Ã©", "'" -> "â€™".
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac")


def file_findings(data: bytes) -> dict[str, Any]:
    """Counts and first line numbers of tolerated oddities; `data` is valid UTF-8."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    crlf = sum(1 for line in lines if line.endswith("\r"))
    found: dict[str, list[int]] = {
        "bom_lines": [],
        "whitespace_only_lines": [],
        "extra_empty_lines": [],
        "replacement_characters": [],
        "mojibake": [],
    }
    previous_empty = False
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if BOM in line and not (number == 1 and line.startswith(BOM) and BOM not in line[1:]):
            found["bom_lines"].append(number)
        stripped = line.strip(BOM)
        empty = not stripped
        if stripped and not stripped.strip(" \t"):
            found["whitespace_only_lines"].append(number)
        if empty and previous_empty:
            found["extra_empty_lines"].append(number)
        if "\ufffd" in line:
            found["replacement_characters"].append(number)
        if _MOJIBAKE.search(line):
            found["mojibake"].append(number)
        previous_empty = empty or not stripped.strip(" \t")
    report: dict[str, Any] = {
        "lines": len(lines),
        "line_endings": "crlf" if crlf == len(lines) and lines else "mixed" if crlf else "lf",
        "starts_with_bom": text.startswith(BOM),
    }
    for key, numbers in found.items():
        report[key] = {"count": len(numbers), "lines": numbers[:MAX_EXAMPLES]}
    return report
