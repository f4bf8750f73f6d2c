"""Which converted copy of a builtin base model every process uses (SQL is the record).

A worker that converts a builtin model (SmolLM2's GGUF to safetensors) uploads it under
a build prefix of its own (``storage.layout.base_model_build_prefix``) and records every
file's row, ``published.json`` included, in one transaction: a build is there whole
or not at all. Two first conversions at once make two complete builds under different
keys, never one mixed copy; everyone takes the oldest published one, so the choice
settles on one build as soon as the first commit lands.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.layout import BASE_MODEL_PUBLISHED, base_model_build_of, base_model_source_prefix
from storage.models import StoredObject


def published_build(session: Session, name: str, source: str) -> str | None:
    """The build prefix of the oldest published copy of ``name`` made from ``source``."""
    prefix = base_model_source_prefix(name, source)
    keys = session.scalars(
        select(StoredObject.key)
        .where(
            StoredObject.key.startswith(prefix, autoescape=True),
            StoredObject.key.endswith("/" + BASE_MODEL_PUBLISHED, autoescape=True),
        )
        .order_by(StoredObject.created_at, StoredObject.key)
    )
    for key in keys:
        build = base_model_build_of(key, name, source)
        if build is not None:
            return build
    return None
