"""The README's fenced snippets, the marks that keep some of them from a run, and the
one shell script that runs the rest in order, as a reader types them into one shell.

A code fence is ``sh``, ``bash`` or ``python`` (run) or ``text`` (not code). The line
right above a fence may mark it, visibly in the Markdown source:

- ``<!-- not run: why -->``: never run by a test (``make demo``, ``tunepool up`` itself);
- ``<!-- slow: why -->``: runs only in ``make readme`` (it waits for real fine-tunes).

Any other comment there, a mark without a reason, a mark above no fence, or a fence in
another language is an error, so that no snippet escapes the test unseen.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

FENCE = re.compile(r"^```(\S*)\s*$")
MARK = re.compile(r"^<!--\s*(not run|slow):\s*(\S.*?)\s*-->$")
RUN = ("sh", "bash", "python")
NOT_CODE = ("text",)
NOT_RUN = "not run"
SLOW = "slow"
# Lines the script prints around each snippet; the test reads them back.
STARTED = "::readme-snippet-started"
DONE = "::readme-snippet-done"
PYTHON_END = "TUNEPOOL_README_PYTHON_SNIPPET"


class ReadmeError(ValueError):
    """The README breaks the snippet conventions at a line."""


@dataclass(frozen=True)
class Snippet:
    number: int  # 1-based, among the code snippets
    line: int  # of the opening fence
    language: str
    code: str
    mark: str | None  # NOT_RUN, SLOW or None
    reason: str = ""

    def __str__(self) -> str:
        return f"snippet {self.number} (README.md:{self.line}, {self.language})"


def read_snippets(markdown: str) -> list[Snippet]:
    lines = markdown.splitlines()
    found: list[Snippet] = []
    fence_lines: set[int] = set()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        start, language = index, opening.group(1)
        fence_lines.add(start)
        end = start + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ReadmeError(f"README.md:{start + 1}: the fence is never closed")
        if language not in RUN + NOT_CODE:
            raise ReadmeError(
                f"README.md:{start + 1}: fence language {language!r}: use one of "
                f"{', '.join(RUN)} (run by the test) or {', '.join(NOT_CODE)}"
            )
        mark, reason = _mark_above(lines, start)
        if language in RUN:
            code = "\n".join(lines[start + 1 : end])
            found.append(Snippet(len(found) + 1, start + 1, language, code, mark, reason))
        elif mark is not None:
            raise ReadmeError(f"README.md:{start}: a {language} fence is never run; drop the mark")
        index = end + 1
    for number, line in enumerate(lines):
        if MARK.match(line) and number + 1 not in fence_lines:
            raise ReadmeError(f"README.md:{number + 1}: a mark belongs right above a fence")
    return found


def _mark_above(lines: list[str], fence: int) -> tuple[str | None, str]:
    above = lines[fence - 1].strip() if fence else ""
    if not above.startswith("<!--"):
        return None, ""
    mark = MARK.match(above)
    if mark is None:
        raise ReadmeError(
            f"README.md:{fence}: a mark reads <!-- not run: why --> or <!-- slow: why -->"
        )
    return mark.group(1), mark.group(2)


def script(snippets: list[Snippet], python: str) -> str:
    """One bash script: every snippet in order in the same shell (variables carry over,
    as in a reader's terminal), each between its STARTED and DONE lines; the first
    failing command ends it."""
    parts = ["set -euo pipefail"]
    for snippet in snippets:
        parts.append(f"echo '{STARTED} {snippet.number}'")
        if snippet.language == "python":
            parts.append(f"{shlex.quote(python)} - <<'{PYTHON_END}'\n{snippet.code}\n{PYTHON_END}")
        else:
            parts.append(snippet.code)
        parts.append(f"echo '{DONE} {snippet.number}'")
    return "\n".join(parts) + "\n"


def numbers(output: str, marker: str) -> list[int]:
    """The snippet numbers after ``marker`` in the script's output, in order."""
    return [int(n) for n in re.findall(rf"^{re.escape(marker)} (\d+)$", output, re.MULTILINE)]
