"""Request bodies are read as strict JSON: a non-finite number is a 400, not a value.

Flask's default reader takes ``NaN`` and ``1e400`` (infinity) as numbers; one such
learning rate, stored, stopped every admission pass (issue 20). The refusal is raised
as an ApiError, so it reaches the client even where a view reads with ``silent=True``.
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from api.errors import ApiError
from storage import finite_json


class FiniteJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return finite_json.loads(s)
        except finite_json.NonFiniteNumber as exc:
            raise ApiError(400, "non_finite_number", str(exc), exc.path, value=exc.token) from None
