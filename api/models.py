"""/v1/models: the registry (models, versions with lineage, aliases with history),
downloads of a version, and online predictions.

A model reference in a URL is ``name@alias``, ``name:version`` or ``name`` (newest).
Another team's model answers exactly like a missing one (404).
"""

from __future__ import annotations

import hashlib
import tarfile
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from api import model_responses as answers
from api.auth import requires
from api.context import caller, db, platform, team_id
from api.errors import ApiError, invalid, not_found
from api.openai_models import base_models, model_object, openai_fields
from api.openai_objects import ModelList, ModelObject
from api.openapi import documented
from api.schemas import AliasRollback, AliasUpdate, PredictRequest
from api.times import rfc3339
from storage.blobs import ChecksumMismatch, recorded_under
from storage.models import ModelVersion, StoredObject
from storage.objects.base import ObjectStore
from storage.registry import (
    AliasEvent,
    alias_history,
    aliases,
    cannot_predict,
    parse_ref,
    resolve,
    rollback,
    set_alias,
)
from tunepool.serving_protocol import Kind

bp = Blueprint("models", __name__, url_prefix="/v1/models")
_CHUNK = 1024 * 1024


def version_json(mv: ModelVersion, alias_map: dict[str, int] | None = None) -> dict[str, Any]:
    alias_map = alias_map if alias_map is not None else aliases(db(), mv.team_id, mv.name)
    return {
        "id": mv.id,
        "name": mv.name,
        "version": mv.version,
        "ref": f"{mv.name}:{mv.version}",
        "task": mv.task,
        "base_model": mv.base_model,
        # The team's version it was trained from (None: an allow-listed base), and whether
        # its files are a whole model or a PEFT adapter that loads over base_model.
        "base_version_id": mv.base_version_id,
        "artifact": mv.artifact,
        "job_id": mv.job_id,
        "metrics": mv.metrics,
        "lineage": {
            "job": mv.job_id,
            "base_model": mv.base_model,
            "metrics": mv.metrics,
            **(mv.lineage or {}),
        },
        "aliases": sorted(a for a, v in alias_map.items() if v == mv.version),
        "created_at": rfc3339(mv.created_at),
    }


def event_json(e: AliasEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "alias": e.alias,
        "kind": e.kind,
        "old_version": e.old_version,
        "new_version": e.new_version,
        "at": rfc3339(e.at),
        "reason": e.reason,
        "actor": e.actor,
    }


def owned_version(ref: str) -> ModelVersion:
    """Resolve within the caller's team: malformed 422, unknown (or another team's) 404."""
    try:
        return resolve(db(), team_id(), parse_ref(ref))
    except ValueError as exc:
        raise invalid("model", str(exc)) from None
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc).strip("'\"")) from None


def _versions(name: str) -> list[ModelVersion]:
    rows = db().scalars(
        select(ModelVersion)
        .where(ModelVersion.team_id == team_id(), ModelVersion.name == name)
        .order_by(ModelVersion.version.desc())
    )
    return list(rows)


def _model_json(name: str, versions: list[ModelVersion]) -> dict[str, Any]:
    newest = versions[0]
    return {
        "name": name,
        "task": newest.task,
        "latest_version": newest.version,
        "versions": len(versions),
        "aliases": aliases(db(), team_id(), name),
        "updated_at": rfc3339(newest.created_at),
    }


@bp.get("")
@documented({200: ModelList}, tag="models")
def list_models() -> Response:
    """The team's models and the base models a fine-tune may start from (also OpenAI's
    ``models.list``)."""
    rows = db().scalars(
        select(ModelVersion)
        .where(ModelVersion.team_id == team_id())
        .order_by(ModelVersion.name, ModelVersion.version.desc())
    )
    grouped: dict[str, list[ModelVersion]] = {}
    for mv in rows:
        grouped.setdefault(mv.name, []).append(mv)
    # Also OpenAI's model list: its fields on every entry, and the base models after.
    data = [{**_model_json(name, vs), **openai_fields(vs[0])} for name, vs in grouped.items()]
    return jsonify({"object": "list", "data": data + base_models()})


@bp.get("/<name>")
@documented({200: ModelObject}, (404,), tag="models")
def show_model(name: str) -> Response:
    """A model of the registry, a base model, or what an OpenAI id names (OpenAI's
    ``models.retrieve``)."""
    versions = _versions(name)
    if not versions:
        # OpenAI's models.retrieve: a base model, an ft: name or a registry reference.
        found = model_object(name)
        if found is None:
            raise not_found("model", name)
        return jsonify(found)
    return jsonify({**_model_json(name, versions), **openai_fields(versions[0])})


@bp.get("/<name>/versions")
@documented({200: answers.ModelVersions}, (404,), tag="models")
def list_versions(name: str) -> Response:
    """A model's versions, newest first, with lineage and aliases."""
    versions = _versions(name)
    if not versions:
        raise not_found("model", name)
    alias_map = aliases(db(), team_id(), name)
    return jsonify({"data": [version_json(mv, alias_map) for mv in versions]})


@bp.get("/<name>/versions/<int:version>")
@documented({200: answers.ModelVersion}, (404, 422), tag="models")
def show_version(name: str, version: int) -> Response:
    """One version of a model."""
    if version > 2**31 - 1:  # beyond any SQL INTEGER: no such version, not a 500
        raise not_found("model version", f"{name}:{version}")
    return jsonify(version_json(owned_version(f"{name}:{version}")))


@bp.put("/<name>/aliases/<alias>")
@documented({200: answers.AliasMove}, (400, 403, 404, 422), tag="models", json=AliasUpdate)
@requires("member")
def put_alias(name: str, alias: str) -> Response:
    """Point an alias (e.g. production) at a version; the move is kept in its history."""
    body = AliasUpdate.model_validate(request.get_json(silent=True) or {})
    return _move(name, alias, lambda s: set_alias(
        s, team_id(), name, alias, body.version, reason=body.reason, actor=caller().id
    ))  # fmt: skip


@bp.post("/<name>/aliases/<alias>/rollback")
@documented({200: answers.AliasMove}, (400, 403, 404, 422), tag="models", json=AliasRollback)
@requires("member")
def rollback_alias(name: str, alias: str) -> Response:
    """Move an alias back to the version it pointed at before its last move."""
    body = AliasRollback.model_validate(request.get_json(silent=True) or {})
    return _move(name, alias, lambda s: rollback(
        s, team_id(), name, alias, reason=body.reason or "rollback", actor=caller().id
    ))  # fmt: skip


def _move(name: str, alias: str, move: Any) -> Response:
    session = db()
    if not _versions(name):
        raise not_found("model", name)
    try:
        event = move(session)
    except ValueError as exc:
        raise invalid("alias", str(exc)) from None
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc).strip("'\"")) from None
    session.commit()
    return jsonify({"name": name, **event_json(event)})


@bp.get("/<name>/aliases/<alias>/history")
@documented({200: answers.AliasHistory}, (404,), tag="models")
def history(name: str, alias: str) -> Response:
    """Every move of an alias: from, to, when, by whom and why."""
    events = alias_history(db(), team_id(), name, alias)
    if not events:
        raise not_found("alias", f"{name}@{alias}")
    return jsonify({"data": [event_json(e) for e in events]})


@bp.get("/<ref>/download")
@documented(
    {200: answers.DownloadLinks},
    (404, 422),
    tag="models",
    media={200: ["application/x-tar"]},
)
def download(ref: str) -> Response:
    """A tar of the version's files (Hugging Face layout), or presigned URLs on S3."""
    mv = owned_version(ref)
    base = mv.prefix.rstrip("/") + "/"
    rows = [
        (row.key, row.size, row.sha256)
        for row in db().scalars(
            select(StoredObject)
            .where(StoredObject.key.startswith(base, autoescape=True))
            .order_by(StoredObject.key)
        )
    ]
    store = platform().store
    expires = 3600
    if rows and store.presign(rows[0][0], expires) is not None:
        files = [
            {
                "path": key[len(base) :],
                "size": size,
                "sha256": sha,
                "url": store.presign(key, expires),
            }
            for key, size, sha in rows
        ]
        return jsonify(
            {"name": mv.name, "version": mv.version, "expires_in_s": expires, "files": files}
        )
    folder = f"{mv.name}-v{mv.version}"
    return Response(
        _tar_stream(store, base, folder, rows),
        mimetype="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{folder}.tar"'},
    )


def _tar_stream(
    store: ObjectStore, base: str, folder: str, rows: list[tuple[str, int, str]]
) -> Iterator[bytes]:
    """Written block by block: never more than one chunk of one file in memory.

    Each file is hashed while it streams; a mismatch aborts the download (the client
    sees a truncated archive) rather than delivering bytes that are not the model's.
    """
    for key, size, sha256 in rows:
        info = tarfile.TarInfo(f"{folder}/{key[len(base) :]}")
        info.size, info.mtime, info.mode = size, int(time.time()), 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        digest, sent = hashlib.sha256(), 0
        with store.open(key) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                sent += len(chunk)
                yield chunk
        if sent != size or digest.hexdigest() != sha256:
            raise ChecksumMismatch(key, sha256, digest.hexdigest())
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


@bp.post("/<ref>/predict")
@documented(
    {200: answers.Predictions}, (400, 403, 404, 422, 500, 504), tag="models", json=PredictRequest
)
@requires("member")
def predict(ref: str) -> Response:
    """Predictions of a version for up to 256 texts or word lists (a serving worker)."""
    from api.serving import serving_client

    mv = owned_version(ref)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "send a JSON object with Content-Type: application/json")
    inputs = PredictRequest.model_validate(body).inputs
    if (why := cannot_predict(mv)) is not None:
        raise invalid("model", why)
    model = {"name": mv.name, "version": mv.version, "task": mv.task, "id": mv.id}
    # The serving worker reads no SQL: it gets the version's files with their checksums.
    objects = [[o.key, o.size, o.sha256] for o in recorded_under(db(), mv.prefix)]
    body = {"model": mv.id, "prefix": mv.prefix, "objects": objects, "inputs": inputs}
    # End the read transaction before waiting: on SQLite it holds the database lock,
    # which would keep the concurrent requests we want to batch with from arriving.
    # (Nothing of `mv` is read after this: that would begin a transaction again.)
    db().rollback()
    started = time.perf_counter()
    outputs = serving_client(current_app).call(Kind.PREDICT, body, model=body["model"])
    outputs = outputs["predictions"]
    took_ms = (time.perf_counter() - started) * 1000
    return jsonify({"model": model, "predictions": outputs, "took_ms": round(took_ms, 2)})
