"""The ``chat`` request kind: tokenize, run on the base's engine, stream the text back.

The body comes from ``api/chat_completions.py`` (already checked there): ``base``,
``adapter`` (``{"id", "prefix", "objects"}`` or null), ``messages`` or ``prompt``, and
the sampling fields. Each piece of text is one ``chunk`` (``{"text"}``); the answer is
the whole text, the finish reason, token counts and the time to the first token. A
request the engine refuses (context too long, queue full) is answered before it runs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from storage.blobs import Recorded
from tunepool.serving_protocol import Failure, Refused
from worker.serving.chat import ChatHost
from worker.serving.handlers import Handler, Reply

# Completion tokens when the caller sets no max_tokens (less if the context is short).
DEFAULT_MAX_TOKENS = 256
# Seconds to wait for the next token before giving up on the engine.
EVENT_TIMEOUT_S = 120.0

_REJECTED = {
    "context_length_exceeded": 400,
    "invalid_request": 400,
    "adapter_not_found": 404,
    "queue_full": 503,
    "unavailable": 503,
}


def chat_handler(host: ChatHost) -> Handler:
    def chat(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        base = host.base(str(body["base"]))
        # The adapter's files stay on disk until the request ends: the engine's keeper
        # reads them when the request first needs the adapter on the base.
        with _adapter_files(host, body.get("adapter")):
            return _generate(base, body, reply)

    return chat


def _adapter_files(
    host: ChatHost, adapter: dict[str, Any] | None
) -> AbstractContextManager[Path | None]:
    if adapter is None:
        return nullcontext()
    objects = [Recorded(key, int(size), sha) for key, size, sha in adapter["objects"]]
    return host.adapter_files.using(adapter["id"], adapter["prefix"], objects)


def _generate(base: Any, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    from worker.inference.generation.prompts import chat_prompt_ids, text_prompt_ids
    from worker.inference.generation.requests import (
        Completion,
        FinishReason,
        GenerationRequest,
        Rejection,
    )

    adapter = body.get("adapter")
    field = "messages" if body.get("messages") is not None else "prompt"
    try:
        if field == "messages":
            prompt = chat_prompt_ids(base.tokenizer, body["messages"])
        else:
            prompt = text_prompt_ids(base.tokenizer, str(body["prompt"]))
    except ValueError as exc:
        raise Refused(Failure(400, "invalid_request", str(exc), field)) from None
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        room = base.engine.max_context - len(prompt)
        max_tokens = max(1, min(DEFAULT_MAX_TOKENS, room))
    request = GenerationRequest(
        prompt_ids=prompt,
        adapter=adapter["id"] if adapter is not None else None,
        max_new_tokens=int(max_tokens),
        temperature=float(body.get("temperature", 1.0)),
        top_p=float(body.get("top_p", 1.0)),
        stop=tuple(body.get("stop") or ()),
        seed=body.get("seed"),
    )
    handle = base.engine.submit(request)
    if isinstance(handle, Rejection):
        status = _REJECTED.get(handle.code, 400)
        at = field if handle.code == "context_length_exceeded" else None
        raise Refused(Failure(status, handle.code, handle.message, at))
    try:
        for event in handle.events(timeout_s=EVENT_TIMEOUT_S):
            if not isinstance(event, Completion):
                if event.text:
                    reply.chunk({"text": event.text})
                continue
            if event.finish_reason is FinishReason.ERROR:
                raise Refused(Failure(500, "generation_failed", event.error or "failed"))
            return {
                "text": event.text,
                "finish_reason": "length" if event.finish_reason is FinishReason.LENGTH else "stop",
                "usage": {
                    "prompt_tokens": event.usage.prompt_tokens,
                    "completion_tokens": event.usage.completion_tokens,
                },
                "ttft_s": event.time_to_first_token_s,
            }
    finally:
        handle.cancel()  # a failed reply write must not leave the row generating
    raise AssertionError("events() ends with a Completion")  # pragma: no cover
