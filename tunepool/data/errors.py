"""The one error type for unusable training data.

A `DataError` names the line of the uploaded file so a user can fix it; the API
turns it into a 4xx response and the worker into a failed job with that message.
"""

from __future__ import annotations

from tunepool.quoting import excerpt

# A message names the problem and quotes a little of the input (tunepool.quoting.quoted);
# this cap only keeps a quote someone forgot to cut from reaching a response whole.
MAX_MESSAGE = 500


class DataError(ValueError):
    """Training data that cannot be used, with the 1-based line at fault if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = excerpt(message, MAX_MESSAGE)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"line {self.line}: {self.message}"
