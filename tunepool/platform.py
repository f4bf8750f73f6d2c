"""The handles a process needs (settings, SQL, object store, publisher), built on demand.

Nothing here connects at import time. A forked child must not reuse its parent's
SQL connections, so the per-process cache is keyed by pid.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_engine, make_session_factory
from tunepool.settings import Settings, load_settings

if TYPE_CHECKING:
    from celery import Celery

    from storage.objects.base import ObjectStore


@dataclass
class Platform:
    settings: Settings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.resolved_database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def store(self) -> ObjectStore:
        from storage.objects.factory import open_store

        return open_store(
            self.settings.resolved_object_store_url,
            access_key=self.settings.s3_access_key,
            secret_key=self.settings.s3_secret_key,
        )

    @cached_property
    def celery(self) -> Celery:
        from worker.celery_app import make_celery

        return make_celery(self.settings)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


_platforms: dict[int, Platform] = {}


def current_platform() -> Platform:
    """The platform of this process, from the environment's settings."""
    pid = os.getpid()
    platform = _platforms.get(pid)
    if platform is None:
        platform = _platforms[pid] = Platform(load_settings())
    return platform
