"""JSON as tunepool reads and writes it: finite numbers only.

Python's ``json`` reads ``NaN``, ``Infinity`` and ``-Infinity`` (and turns ``1e400``
into infinity) and writes them back out as those same bare words, which are not
JSON. SQLite then stores the text as is and every JSON function over that row fails
("malformed JSON"); PostgreSQL refuses the write. So requests are read with
:func:`loads`, which refuses such a number and says which one, and the database
engines write with :func:`dumps`, which never emits one.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

log = logging.getLogger(__name__)

# How much of an offending number to quote back (a 10 kB run of digits is still one token).
_QUOTE = 40


class NonFiniteNumber(ValueError):
    """A number that is not a finite IEEE double: NaN, Infinity, or out of range.

    ``path``: where it sits in the document ("hyperparameters.learning_rate"), when known.
    """

    def __init__(self, token: str, path: str | None = None) -> None:
        self.token = token if len(token) <= _QUOTE else token[:_QUOTE] + "..."
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(
            f"{where}the number {self.token} is not finite; JSON numbers here must be finite"
        )


def _refuse_constant(token: str) -> Any:
    raise NonFiniteNumber(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise NonFiniteNumber(token)
    return value


def loads(text: str | bytes) -> Any:
    """``json.loads`` that raises NonFiniteNumber on NaN, +-Infinity or a float overflow."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except NonFiniteNumber as exc:
        raise NonFiniteNumber(exc.token, _path_of_first(text)) from None


class _Marker:
    pass


def _path_of_first(text: str | bytes) -> str | None:
    """Where the first non-finite number sits: read again, leniently (errors only)."""
    marker = _Marker()

    def mark_float(token: str) -> Any:
        value = float(token)
        return value if math.isfinite(value) else marker

    document = json.loads(text, parse_constant=lambda _t: marker, parse_float=mark_float)
    return _find(document, marker, [])


def _find(value: Any, marker: _Marker, path: list[str]) -> str | None:
    if value is marker:
        return ".".join(path) or None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _find(item, marker, [*path, str(key)])
        if found is not None:
            return found
    return None


def dumps(value: Any) -> str:
    """Strict JSON for a database column: a non-finite float is written as null.

    The API refuses such numbers on the way in; what reaches here (a training loss that
    diverged to NaN) is recorded as "no value" rather than poisoning the row.
    """
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        log.warning("a non-finite number was stored as null")
        return json.dumps(_finite(value), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
