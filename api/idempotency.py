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

A view marked ``api.context.one_statement`` (job submission) reserves nothing on arrival:
its key's row is written with the answer in the one statement that writes what it
creates (storage.intake), ``ON CONFLICT DO NOTHING``. That saves the reservation's INSERT
on every call, and on PostgreSQL the request needs no transaction. A retry runs the view
again up to that statement, which finds the key taken and writes nothing, and the first
call's answer is replayed; a concurrent duplicate waits there for the first call's row.
An answer the view did not write with its rows (a 4xx) is kept only under a key still
free, so it never replaces another call's answer, and a 5xx leaves nothing to free.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.orm import Session

from api.after_writes import defer
from api.context import close_db, db, one_statement_here, platform
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
        if one_statement_here():
            # Kept with its answer in the view's one statement, or not at all
            # (see the module's docstring).
            g.idempotency = (api_key.team_id, key, fingerprint)
            g.idempotency_at_commit = True
            return None
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
        at_commit = g.pop("idempotency_at_commit", False)
        if held is None:
            return response
        team_id, key, fingerprint = held
        if committed:
            # The answer committed with what it answers stands: under a later 5xx what it
            # created exists, and a retry must get it, not create it again; a redacted
            # answer must not be replaced by the one that holds the secret.
            return response
        unkept = response.status_code >= 500 or response.is_streamed or response.direct_passthrough
        if at_commit:
            return response if unkept else _keep_unless_taken(response, held)
        write: Callable[[Session], None]
        if unkept:
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
        # the call may have committed before it failed. (A key kept at commit is
        # written with its answer or not at all: nothing to free.)
        held = g.pop("idempotency", None)
        committed = g.pop("idempotency_committed", False)
        if held is not None and not committed and not g.pop("idempotency_at_commit", False):
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


def _keep_unless_taken(response: Response, held: tuple[str, str, str]) -> Response:
    """Keep the answer of a view marked one_statement that did not write it, under a key still
    free; else the answer of the call that took the key (an error answered as such)."""
    team_id, key, fingerprint = held
    close_db()
    with transaction(platform().sessions) as session:
        if idempotency.keep_if_absent(session, team_id, key, fingerprint, _answer(response)):
            return response
        try:
            return _answer_of_taken_key(session, team_id, key, fingerprint)
        except ApiError as refused:
            answer = jsonify(refused.body())
            answer.status_code = refused.status
            return answer


def taken_key_answer(session: Session) -> Response:
    """For a view marked one_statement whose write found its key taken: that call's answer
    (raises ApiError 409 or 422 where there is none to give). Nothing is kept for it."""
    team_id, key, fingerprint = g.pop("idempotency")
    g.pop("idempotency_at_commit", None)
    return _answer_of_taken_key(session, team_id, key, fingerprint)


def answer_before_commit(session: Session, response: Response) -> None:
    """Keep ``response`` as this call's answer in the transaction about to commit what it
    answers: one UPDATE of the key's reservation, and one write less afterwards."""
    held = g.get("idempotency")
    if held is None:
        return
    if g.get("idempotency_at_commit"):
        raise RuntimeError("a view marked one_statement writes its key's row with kept_row()")
    team_id, key, _ = held
    idempotency.answer_reservation(session, team_id, key, _answer(response))
    g.idempotency_committed = True


def kept_row(response: Response) -> dict[str, Any] | None:
    """For a view marked one_statement: its key's row with ``response`` as the answer (None
    without a key), to write with what it answers (storage.intake). Call
    :func:`committed` once that has committed."""
    held = g.get("idempotency")
    if held is None:
        return None
    if not g.get("idempotency_at_commit"):
        raise RuntimeError("the key was reserved on arrival: answer_before_commit() keeps it")
    team_id, key, fingerprint = held
    return idempotency.answered_row(team_id, key, fingerprint, _answer(response))


def committed() -> None:
    """The view's answer committed with its key's row: nothing to keep afterwards."""
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
