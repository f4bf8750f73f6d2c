"""What a job's log keeps of what libraries print: their messages, not their decoration.

A job process's stdout and stderr reach logging through Celery's redirect (logger
``celery.redirected``, one record per write). Hugging Face's weight-loading report
(a table of MISSING/UNEXPECTED keys in ANSI bold, printed for every classifier head
that is trained from scratch, i.e. every job) and tqdm's progress bars (a record per
carriage-return redraw) then buried the job's own lines. They are graded debug, so a
job log at info no longer shows them; everything else only loses its colour codes.
"""

from __future__ import annotations

import logging
import re

# CSI sequences (colours, bold, cursor moves): ESC [ parameters intermediates final.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# tqdm's bar: " 45%|████▌     | 45/101 [00:01<00:02, 25.1it/s]".
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+")
# Transformers' load report and the older warning that said the same in prose.
LOAD_REPORT = (
    "LOAD REPORT",
    "| MISSING",
    "| UNEXPECTED",
    "| MISMATCH",
    "- MISSING:",
    "- UNEXPECTED:",
    "were not initialized from the model checkpoint",
    "were not used when initializing",
    "You should probably TRAIN this model",
)


def grade(level: int, text: str) -> tuple[int, str]:
    """The level a job log should give a line logged at ``level``, and its text without
    ANSI codes."""
    message = ANSI.sub("", text)
    noise = "\r" in message or PROGRESS_BAR.search(message) is not None
    noise = noise or any(marker in message for marker in LOAD_REPORT)
    return (logging.DEBUG if noise else level), message.strip("\r\n")
