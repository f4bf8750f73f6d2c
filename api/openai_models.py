"""The models an OpenAI client sees: ``client.models.list()`` and ``models.retrieve()``.

``GET /v1/models`` is tunepool's registry list and OpenAI's model list at once: every
entry carries OpenAI's ``id``, ``object``, ``created`` and ``owned_by`` beside the
registry's own fields, and the list holds the platform's allow-listed base models
(``owned_by: tunepool``) and the caller's own models, never another team's. A model
made by an OpenAI chat fine-tuning job is listed under the name the job answered as
``fine_tuned_model`` (``ft:<base>:<team>:<suffix>:<job>``, storage.openai_names).
``models.retrieve`` takes any of those ids, a registry reference (``name:version``,
``name@alias``) and hub-style base names with a ``/``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.context import db, platform, team_id
from api.errors import not_found
from api.openai_objects import ModelObject
from api.openapi import documented
from storage.models import Job, ModelVersion
from storage.openai_names import name_of_job, resolve_fine_tuned
from storage.registry import parse_ref, resolve
from tunepool.builtin_models import CAUSAL_LM_TASK, SOURCE_TASKS

bp = Blueprint("openai_models", __name__, url_prefix="/v1/models")

BASE_OWNER = "tunepool"


def base_models() -> list[dict[str, Any]]:
    """Every allow-listed base model name a job may start from (internal aliases aside)."""
    return [
        base_model_object(name, source)
        for name, source in sorted(platform().settings.allowed_base_models.items())
        if not name.startswith("builtin:")
    ]


def base_model_object(name: str, source: str) -> dict[str, Any]:
    kind = SOURCE_TASKS.get(source)
    return {
        "id": name,
        "object": "model",
        "created": 0,  # shipped with the platform or listed by the operator: no one time
        "owned_by": BASE_OWNER,
        "kind": "base",
        "name": name,
        # What it is fine-tuned for: causal-lm for a chat model, the encoder tasks
        # otherwise; None for an operator's source (the operator decides).
        "task": CAUSAL_LM_TASK if kind == CAUSAL_LM_TASK else ("encoder" if kind else None),
        "latest_version": None,
        "versions": 0,
        "aliases": {},
    }


def openai_fields(newest: ModelVersion) -> dict[str, Any]:
    """OpenAI's fields of a registry model, named after its newest version."""
    return {
        "id": openai_id(newest),
        "object": "model",
        "created": int(newest.created_at),
        "owned_by": newest.team_id,
        "kind": "fine-tuned",
    }


def openai_id(version: ModelVersion) -> str:
    """The name an OpenAI client knows a version by: its chat job's ``ft:`` name, else the
    registry's ``name:version``."""
    job = db().get(Job, version.job_id) if version.job_id else None
    named = name_of_job(db(), job) if job is not None else None
    return named or f"{version.name}:{version.version}"


def version_object(version: ModelVersion, asked: str) -> dict[str, Any]:
    return {
        **openai_fields(version),
        "id": asked,
        "name": version.name,
        "version": version.version,
        "task": version.task,
        "base_model": version.base_model,
    }


def model_object(asked: str) -> dict[str, Any] | None:
    """The model an OpenAI id or registry reference names for the caller; None if none."""
    source = platform().settings.allowed_base_models.get(asked)
    if source is not None:
        return base_model_object(asked, source)
    version = resolve_fine_tuned(db(), team_id(), asked)
    if version is None:
        try:
            version = resolve(db(), team_id(), parse_ref(asked.removeprefix("ft:")))
        except (ValueError, LookupError):
            return None
    return version_object(version, asked)


@bp.get("/<path:model_id>")
@documented({200: ModelObject}, (404,), tag="models")
def retrieve_path(model_id: str) -> Response:
    """A model whose id holds a ``/`` (a hub-style base name such as
    ``HuggingFaceTB/SmolLM2-135M-Instruct``); other ids have their own routes."""
    found = model_object(model_id)
    if found is None:
        raise not_found("model", model_id)
    return jsonify(found)
