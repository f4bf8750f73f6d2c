"""POST /v1/chat/completions and /v1/completions, as OpenAI serves them (DESIGN §7).

The API loads no model: it checks the body, resolves ``model`` within the caller's team
(``storage.chat_models``: a base model or the team's own adapter; another team's is a
404), takes a place under the team's limits, and sends a ``chat`` request to a serving
worker, preferring one that holds the adapter, then one that holds its base. Tokens are
relayed as they come: server-sent events ending in ``data: [DONE]`` when ``stream`` is
set, else one JSON answer. The first reply entry is awaited before the answer starts,
so a refusal (context too long, full queue) is an HTTP status, not an event; a worker
lost later ends the stream with an ``error`` event (never a hang).

Errors here are OpenAI's shape (``message``, ``type``, ``param``, ``code``) beside
tunepool's own ``field``; invalid bodies are 400s, as OpenAI answers them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from pydantic import ValidationError

from api.auth import requires
from api.chat_limits import ChatLimits, Place
from api.chat_metrics import record_answer
from api.chat_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    CompletionRequest,
    TextCompletion,
)
from api.context import db, platform, team_id
from api.errors import ApiError, from_validation
from api.openapi import documented
from api.serving import serving_client
from storage.chat_models import ChatModelNotFound, NotAChatModel, resolve_chat_model
from tunepool.redis_client import redis_client
from tunepool.serving_protocol import Kind, ReplyEntry, ReplyType, base_key

bp = Blueprint("chat_completions", __name__, url_prefix="/v1")
LIMITS = "tunepool.chat_limits"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions

# Answered in OpenAI's shape (this blueprint's handlers). A 429 of the per-key limit and a
# 503 of the database come from the app's handlers, in tunepool's (which OpenAI's extends).
OPENAI_ERRORS = (400, 401, 403, 404, 500, 504)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(exc: ApiError) -> dict[str, Any]:
    """tunepool's error body with OpenAI's fields added (the SDK reads ``message``)."""
    body = exc.body()
    body["error"].update(
        {"type": _TYPES.get(exc.status, "server_error"), "param": exc.field, "code": exc.code}
    )
    return body


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(openai_error(exc)), exc.status, exc.headers


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> tuple[Response, int]:
    found = from_validation(exc)
    error = ApiError(400, "invalid_request_error", found.message, found.field)
    return jsonify(openai_error(error)), 400


def _limits() -> ChatLimits:
    limits: ChatLimits | None = current_app.extensions.get(LIMITS)
    if limits is None:
        settings = platform().settings
        limits = current_app.extensions.setdefault(
            LIMITS,
            ChatLimits(
                redis_client(settings.redis_url),
                settings.redis_url,
                settings.chat_team_concurrency,
                settings.chat_team_tokens_per_minute,
            ),
        )
    return limits


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "send a JSON object with Content-Type: application/json")
    return body


@dataclass
class _Call:
    """One request on its way: where it was sent, its relay and its first entry."""

    team_id: str
    model: str
    place: Place
    relay: Generator[ReplyEntry, None, None]
    first: ReplyEntry
    started: float
    ttft_s: float | None


def _start(model: str, payload: dict[str, Any]) -> _Call:
    """Resolve, admit, send, and wait for the first reply entry (refusals raise here)."""
    started = time.monotonic()
    settings = platform().settings
    team = team_id()
    try:
        found = resolve_chat_model(db(), team, model, settings.allowed_base_models)
    except ChatModelNotFound as exc:
        raise ApiError(404, "model_not_found", str(exc), "model") from None
    except NotAChatModel as exc:
        raise ApiError(400, "invalid_request_error", str(exc), "model") from None
    adapter = found.adapter
    body = {
        "base": found.base_model,
        "adapter": None
        if adapter is None
        else {
            "id": adapter.version_id,
            "prefix": adapter.prefix,
            "objects": [[o.key, o.size, o.sha256] for o in adapter.objects],
        },
        **payload,
    }
    # End the read transaction before the long wait (on SQLite it holds the lock).
    db().rollback()
    client = serving_client(current_app)
    limits = _limits()
    place = limits.enter(team, time.time() + client.timeout_s)
    try:
        base = base_key(found.base_model)
        sent = client.send(
            Kind.CHAT, body, model=adapter.version_id if adapter else base, base=base
        )
        relay = client.relay(sent)
        first = next(relay)
    except BaseException:
        limits.leave(place)
        raise
    ttft = time.monotonic() - started if first.type is ReplyType.CHUNK else None
    return _Call(team, model, place, relay, first, started, ttft)


def _entries(call: _Call) -> Iterator[ReplyEntry]:
    yield call.first
    if call.first.type is not ReplyType.END:
        yield from call.relay


def _finish(call: _Call, answer: dict[str, Any]) -> dict[str, int]:
    """Give the place back, charge the tokens, record the figures; the usage object."""
    limits = _limits()
    limits.leave(call.place)
    usage = answer["usage"]
    prompt, completion = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    try:
        limits.charge(call.team_id, prompt + completion)
        ttft = call.ttft_s if call.ttft_s is not None else time.monotonic() - call.started
        record_answer(redis_client(platform().settings.redis_url), call.team_id, prompt,
                      completion, ttft if completion else None)  # fmt: skip
    except Exception:  # figures lost must not turn a served answer into an error
        current_app.logger.exception("could not record a chat answer's usage")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@bp.post("/chat/completions")
@documented(
    {200: ChatCompletion},
    tag="OpenAI: chat",
    json=ChatCompletionRequest,
    media={200: ["text/event-stream"]},
    openai_errors=OPENAI_ERRORS,
)
@requires("member")
def chat() -> Response:
    """A chat completion (OpenAI API) from a base model or the team's fine-tuned adapter."""
    spec = ChatCompletionRequest.model_validate(_json_body())
    messages = [m.as_template_input() for m in spec.messages]
    call = _start(spec.model, {"messages": messages, **spec.sampling()})
    return _answer(call, spec.stream, spec.include_usage, chat=True)


@bp.post("/completions")
@documented(
    {200: TextCompletion},
    tag="OpenAI: chat",
    json=CompletionRequest,
    media={200: ["text/event-stream"]},
    openai_errors=OPENAI_ERRORS,
)
@requires("member")
def complete() -> Response:
    """A text completion (OpenAI's legacy completions API) of one prompt."""
    spec = CompletionRequest.model_validate(_json_body())
    sampling = spec.sampling()
    if sampling["max_tokens"] is None:
        sampling["max_tokens"] = COMPLETIONS_DEFAULT_MAX_TOKENS
    call = _start(spec.model, {"prompt": spec.text, **sampling})
    return _answer(call, spec.stream, spec.include_usage, chat=False)


def _answer(call: _Call, stream: bool, include_usage: bool, *, chat: bool) -> Response:
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
    shape = _Shape(ident, int(time.time()), call.model, chat)
    if stream:
        events = stream_with_context(_events(call, shape, include_usage))
        response = Response(events, mimetype="text/event-stream")
        # A client gone before the first read: the place is given back all the same.
        limits, place = _limits(), call.place
        response.call_on_close(lambda: limits.leave(place))
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"  # proxies must not hold tokens back
        return response
    try:
        answer = next(e.data for e in _entries(call) if e.type is ReplyType.END)
    finally:
        call.relay.close()
        _limits().leave(call.place)
    return jsonify(shape.whole(answer, _finish(call, answer)))


def _events(call: _Call, shape: _Shape, include_usage: bool) -> Iterator[str]:
    try:
        if shape.chat:
            yield _sse(shape.chunk({"role": "assistant", "content": ""}, None))
        for entry in _entries(call):
            if entry.type is ReplyType.CHUNK:
                yield _sse(shape.chunk(entry.data["text"], None))
                continue
            answer = entry.data
            usage = _finish(call, answer)
            yield _sse(shape.chunk("" if not shape.chat else {}, answer["finish_reason"]))
            if include_usage:
                yield _sse({**shape.envelope(), "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"
    except ApiError as exc:  # e.g. the worker died mid-stream: an error event, then the end
        yield _sse(openai_error(exc))
    finally:
        call.relay.close()
        _limits().leave(call.place)


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass(frozen=True)
class _Shape:
    """OpenAI's objects for one answer: chat or text completion, whole or in chunks."""

    id: str
    created: int
    model: str
    chat: bool

    def envelope(self, chunk: bool = True) -> dict[str, Any]:
        kind = (
            ("chat.completion.chunk" if chunk else "chat.completion")
            if self.chat
            else ("text_completion")
        )
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, content: str | dict[str, Any], finish: str | None) -> dict[str, Any]:
        if self.chat:
            delta = content if isinstance(content, dict) else {"content": content}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": finish}
        return {**self.envelope(), "choices": [choice]}

    def whole(self, answer: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
        if self.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": answer["text"], "refusal": None},
                "logprobs": None,
                "finish_reason": answer["finish_reason"],
            }
        else:
            choice = {
                "index": 0,
                "text": answer["text"],
                "logprobs": None,
                "finish_reason": answer["finish_reason"],
            }
        return {**self.envelope(chunk=False), "choices": [choice], "usage": usage}
