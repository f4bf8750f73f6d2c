"""Errors are values with a code, a message a user can act on, and the field at fault.

Every 4xx leaves the API as ``{"error": {"code", "message", "field"}}`` from here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from storage.refusals import Refusal
from tunepool.quoting import excerpt

# Every message and field name leaves here cut to these lengths: both may quote input
# (a 50 MB line, a 50 MB JSON key), and the error must stay an error, not an echo.
MAX_MESSAGE = 1000
MAX_FIELD = 200


class ErrorDetail(BaseModel):
    """What went wrong. Some errors add what a client can act on: the limit reached, the
    line of a file, the seconds to wait."""

    model_config = ConfigDict(extra="allow")
    code: str = Field(description="invalid, not_found, conflict, forbidden, rate_limited, ...")
    message: str = Field(description="what to change, naming the field when there is one")
    field: str | None = Field(description="the body field, parameter or header at fault")
    limit: str | int | None = Field(None, description="the team's or the pool's limit")
    line: int | None = Field(None, description="the line of an uploaded file")
    problems: dict[str, Any] | None = Field(None, description="a chat file's bad lines")
    value: str | None = Field(None, description="a number JSON cannot hold (NaN, 1e400)")
    retry_after: int | None = Field(None, description="seconds until a retry may pass")


class ErrorResponse(BaseModel):
    """The body of every tunepool error (``ApiError.body``)."""

    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        message = excerpt(message, MAX_MESSAGE)
        field = excerpt(field, MAX_FIELD) if field is not None else None
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.extra = (
            status,
            code,
            message,
            field,
            extra,
        )
        # E.g. Retry-After on a 503 that a retry a little later would not get.
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {"code": self.code, "message": self.message, "field": self.field, **self.extra}
        }


def not_found(kind: str, ident: str) -> ApiError:
    # Another team's resource answers exactly like a missing one: no existence leak.
    return ApiError(404, "not_found", f"{kind} {ident} not found")


def invalid(field: str, message: str, **extra: Any) -> ApiError:
    return ApiError(422, "invalid", f"{field}: {message}", field, **extra)


def from_refusal(found: Refusal) -> ApiError:
    """A job factory's refusal (storage.job_factory) as the API's error, with its limit."""
    extra: dict[str, Any] = {"limit": found.limit} if found.limit is not None else {}
    return ApiError(found.status, found.code, found.message, found.field, **extra)


def from_validation(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    message = first["msg"]
    return ApiError(422, "invalid", f"{field}: {message}" if field else message, field)


def install(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int, dict[str, str]]:
        return jsonify(exc.body()), exc.status, exc.headers

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> tuple[Response, int]:
        err = from_validation(exc)
        return jsonify(err.body()), err.status

    @app.errorhandler(OperationalError)
    def _db_down(exc: OperationalError) -> tuple[Response, int, dict[str, str]]:
        body = ApiError(503, "unavailable", "the database is unavailable; retry shortly").body()
        return jsonify(body), 503, {"Retry-After": "5"}

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        message = excerpt(exc.description or "", MAX_MESSAGE)
        return jsonify({"error": {"code": code, "message": message, "field": None}}), status
