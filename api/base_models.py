"""The ``base_model`` check of every route that starts a job from one (storage.base_models)."""

from __future__ import annotations

from api.context import db, platform, team_id
from api.errors import invalid
from storage import base_models
from storage.models import ModelVersion


def checked_base_model(name: str) -> base_models.Listed | base_models.Noop | ModelVersion:
    """What ``name`` resolves to for the caller's team; 422 on ``base_model`` listing what
    is allowed otherwise (another team's model is refused like a missing one)."""
    try:
        return base_models.resolve(db(), team_id(), name, platform().settings)
    except base_models.BaseModelRefused as exc:
        raise invalid("base_model", str(exc)) from None
