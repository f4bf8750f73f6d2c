"""The Idempotency-Key header on every POST that creates something.

The first call with a key runs and its answer (status and body) is kept; a retry
with the same key and the same request gets that answer again and creates
nothing; the same key with a different request is a 422; a retry that arrives
while the first call is still running gets a 409. Answers of 5xx are not kept, so
a retry after a server error runs again.

A view whose answer is known before it commits keeps it in that same transaction
(``answer_before_commit``, through api.commit_answer): then no crash or error after the
commit can leave the key reserved without an answer (every retry a 409) or free it (a
retry that creates a second job).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import partial

from flask import Flask, Response, g, request
from sqlalchemy.orm import Session

from api.after_writes import defer
from api.context import close_db, db, platform
from api.errors import ApiError
from storage import idempotency
from storage.db import transaction

HEADER = "Idempotency-Key"
KEY = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")


def _fingerprint() -> str:
    """What makes two calls 'the same request': route and body (uploads by their bytes)."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    # Only a multipart body is parsed into form and files (their bytes hashed below);
    # looking at request.files parses any body, three quarters of this function's cost
    # on a JSON submit, and a parsed body is gone from get_data().
    if request.mimetype == "multipart/form-data":
        for name in sorted(request.form):
            digest.update(f"{name}={request.form[name]}\n".encode())
        for name, upload in sorted(request.files.items()):
            digest.update(name.encode())
            while chunk := upload.stream.read(1 << 20):
                digest.update(chunk)
            upload.stream.seek(0)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def install(app: Flask) -> None:
    @app.before_request
    def _replay_or_reserve() -> Response | None:
        key = request.headers.get(HEADER)
        api_key = g.get("api_key")
        if key is None or request.method != "POST" or api_key is None:
            return None
        if not KEY.match(key):
            raise ApiError(422, "invalid", f"{HEADER}: 1-255 letters, digits or . _ : -", HEADER)
        fingerprint = _fingerprint()
        # Reserve in the request's own transaction, where authentication has just read the
        # key: the reservation commits with what the call creates, in one transaction, and
        # a call that fails before committing leaves the key free. A new key (the common
        # case) costs one INSERT; only a key already taken is read back.
        session = db()
        if idempotency.reserve(session, api_key.team_id, key, fingerprint):
            g.idempotency = (api_key.team_id, key, fingerprint)
            return None
        return _answer_of_taken_key(session, api_key.team_id, key, fingerprint)

    @app.after_request
    def _remember(response: Response) -> Response:
        held = g.pop("idempotency", None)
        committed = g.pop("idempotency_committed", False)
        if held is None:
            return response
        team_id, key, fingerprint = held
        if committed:
            # The answer committed with what it answers stands: under a later 5xx what it
            # created exists, and a retry must get it, not create it again; a redacted
            # answer must not be replaced by the one that holds the secret.
            return response
        write: Callable[[Session], None]
        if response.status_code >= 500 or response.is_streamed or response.direct_passthrough:
            # Not an answer worth replaying: let a retry run again.
            write = partial(idempotency.forget, team_id=team_id, key=key)
        else:
            write = partial(
                idempotency.keep_answer,
                team_id=team_id,
                key=key,
                fingerprint=fingerprint,
                answer=_answer(response),
            )
        # With the audit row, in one transaction (api.after_writes).
        defer(write, f"the answer for {HEADER} {key}")
        return response

    @app.teardown_request
    def _release(exc: BaseException | None) -> None:
        # An exception that escaped every handler leaves no answer: free the key, which
        # the call may have committed before it failed.
        held = g.pop("idempotency", None)
        committed = g.pop("idempotency_committed", False)
        if held is not None and not committed:
            team_id, key, _ = held
            close_db()
            with transaction(platform().sessions) as session:
                idempotency.forget(session, team_id, key)


def _answer_of_taken_key(session: Session, team_id: str, key: str, fingerprint: str) -> Response:
    """The answer for a key another call has used: its answer again, or why not."""
    found = idempotency.find(session, team_id, key)
    if found is None:  # the first call failed and freed its key meanwhile: run again
        raise _in_progress()
    if found.fingerprint != fingerprint:
        raise ApiError(
            422,
            "idempotency_key_reused",
            f"{HEADER} {key} was used for a different request",
            HEADER,
        )
    if found.status is None:
        raise _in_progress()
    replay = Response(
        found.body or "",
        status=found.status,
        content_type=found.content_type or "application/json",
    )
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def answer_before_commit(session: Session, response: Response) -> None:
    """Keep ``response`` as this call's answer in the transaction about to commit what it
    answers: one UPDATE of the key's reservation, and one write less afterwards."""
    held = g.get("idempotency")
    if held is None:
        return
    team_id, key, _ = held
    idempotency.answer_reservation(session, team_id, key, _answer(response))
    g.idempotency_committed = True


def _answer(response: Response) -> tuple[int, str, str | None]:
    return response.status_code, response.get_data(as_text=True), response.content_type


def _in_progress() -> ApiError:
    return ApiError(
        409,
        "idempotency_key_in_use",
        f"a request with this {HEADER} is still being answered; retry shortly",
        HEADER,
    )
