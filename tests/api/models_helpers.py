"""Put a saved model directory into the registry as a version, as a fine-tune job would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.blobs import store_dir
from storage.db import transaction
from storage.models import ModelVersion, Team
from storage.platform import Platform
from storage.registry import next_version


def publish_version(
    platform: Platform,
    team: str,
    name: str,
    model_dir: Path,
    *,
    task: str = "token-classification",
    lineage: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    base_model: str = "tiny",
    artifact: str = "model",
) -> ModelVersion:
    with transaction(platform.sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == team))
        assert team_id is not None, f"create team {team} first (make_key)"
        version = next_version(session, team_id, name)
        prefix = f"teams/{team_id}/models/{name}/{version}/"
        store_dir(session, platform.store, prefix, model_dir)
        mv = ModelVersion(
            team_id=team_id,
            name=name,
            version=version,
            task=task,
            prefix=prefix,
            base_model=base_model,
            artifact=artifact,
            metrics=metrics or {},
            lineage=lineage or {},
        )
        session.add(mv)
        session.flush()
        return mv
