"""What engines fetch, checked against the job's team and verified against checksums.

The SQL side of ``worker.engines.context.Inputs``: every download says the run is
alive (the lease keeper renews it through long downloads), and a resumed attempt
records the step its checkpoint starts from.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import base_models
from storage.blobs import fetch_dir, fetch_file
from storage.db import transaction
from storage.lease import Claim, set_start_step
from storage.models import Checkpoint, Dataset, ModelVersion
from storage.platform import Platform
from storage.promotion import PRODUCTION
from storage.registry import aliases, get_version
from tunepool.builtin_models import SMOLLM2_SOURCE
from worker.engines.context import BaseModel, InputMissing, LocalDataset, LocalModel
from worker.lease_keeper import LeaseKeeper


class StoreInputs:
    def __init__(self, platform: Platform, claimed: Claim, team_id: str, keeper: LeaseKeeper):
        self.platform, self.claimed, self.team_id, self.keeper = platform, claimed, team_id, keeper

    def dataset(self, dataset_id: str, stem: Path) -> LocalDataset:
        with self.platform.sessions() as session:
            row = session.get(Dataset, dataset_id)
            if row is None or row.team_id != self.team_id:
                raise InputMissing(f"dataset {dataset_id} not found")
            path = stem.parent / f"{stem.name}.{row.format}"
            fetch_file(session, self.platform.store, row.object_key, path)
            found = LocalDataset(row.id, path, row.format, row.task, row.sha256)
        self.keeper.alive()
        return found

    def model_version(self, version_id: str, target: Path) -> LocalModel:
        with self.platform.sessions() as session:
            row = session.get(ModelVersion, version_id)
            if row is None or row.team_id != self.team_id:
                raise InputMissing(f"model version {version_id} is gone")
            found = self._fetch(session, row, target)
        self.keeper.alive()
        return found

    def production_version(self, name: str, target: Path) -> LocalModel | None:
        with self.platform.sessions() as session:
            version = aliases(session, self.team_id, name).get(PRODUCTION)
            row = get_version(session, self.team_id, name, version) if version else None
            found = self._fetch(session, row, target) if row is not None else None
        self.keeper.alive()
        return found

    def base_model(self, name: str, target: Path) -> BaseModel:
        with self.platform.sessions() as session:
            base = base_models.resolve(session, self.team_id, name, self.platform.settings)
            if isinstance(base, ModelVersion):
                fetch_dir(session, self.platform.store, base.prefix, target)
                self.keeper.alive()
                return BaseModel(name, str(target), base.id)
        if isinstance(base, base_models.Listed):
            if base.source == SMOLLM2_SOURCE:  # converted once for the platform, then fetched
                from worker.converted_models import converted_base_dir, smollm2_source

                copy = converted_base_dir(
                    self.platform.sessions,
                    self.platform.store,
                    smollm2_source(),
                    self.platform.settings.model_cache_dir,
                )
                self.keeper.alive()
                return BaseModel(name, str(copy))
            return BaseModel(name, base.source)
        # The envelope runs the no-op engine for these before any engine asks.
        raise base_models.BaseModelRefused(f"{name!r} is a no-op engine, not a model")

    def resume_checkpoint(self, target: Path) -> Path | None:
        job_id = self.claimed.job_id
        with self.platform.sessions() as session:
            newest = session.scalar(
                select(Checkpoint)
                .where(Checkpoint.job_id == job_id)
                .order_by(Checkpoint.step.desc())
                .limit(1)
            )
            if newest is None:
                return None
            fetch_dir(session, self.platform.store, newest.prefix, target)
            step = newest.step
        self.keeper.alive()
        with transaction(self.platform.sessions) as session:
            set_start_step(session, job_id, self.claimed.owner, step)
        return target

    def _fetch(self, session: Session, row: ModelVersion, target: Path) -> LocalModel:
        fetch_dir(session, self.platform.store, row.prefix, target)
        return LocalModel(
            id=row.id,
            name=row.name,
            version=row.version,
            task=row.task,
            base_model=row.base_model,
            lineage=dict(row.lineage or {}),
            directory=target,
        )
