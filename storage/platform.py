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


# eq=False: a platform is one process's handles, equal only to itself, and so hashable
# (per-platform memories such as the admission ask's window in tunepool.admission_ask).
@dataclass(eq=False)
class Platform:
    settings: Settings
    # The API's process: one short transaction per request, so its SQL engine bounds lock
    # waits and idle transactions (settings api_sql_*; storage.db.make_engine says why).
    for_api: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def engine(self) -> Engine:
        if not self.for_api:
            return make_engine(self.settings.resolved_database_url)
        return make_engine(
            self.settings.resolved_database_url,
            lock_timeout_s=self.settings.api_sql_lock_timeout_s,
            idle_in_transaction_timeout_s=self.settings.api_sql_idle_in_transaction_timeout_s,
            pool_size=self.settings.api_sql_pool_size,
        )

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
        from tunepool.celery_factory import make_celery

        return make_celery(self.settings)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


_platforms: dict[int, Platform] = {}


def _adopt_in_forked_child() -> None:
    """A forked child keeps its parent's settings and SQL engine, not its connections.

    Celery forks a fresh child for every job. Reading the settings again and building a
    new engine cost each child CPU, and a new engine starts with an empty cache of
    compiled statements. ``dispose(close=False)`` gives the inherited engine a pool of
    its own without touching the parent's connections (SQLAlchemy's recipe for fork).
    The object store and Celery clients hold sockets too: they are built again on use.
    """
    parent = _platforms.get(os.getppid())
    _platforms.clear()
    if parent is None:
        return
    child = Platform(parent.settings, for_api=parent.for_api)
    if "engine" in parent.__dict__:
        engine = parent.__dict__["engine"]
        engine.dispose(close=False)
        child.__dict__["engine"] = engine
    _platforms[os.getpid()] = child


os.register_at_fork(after_in_child=_adopt_in_forked_child)


def current_platform() -> Platform:
    """The platform of this process, from the environment's settings."""
    pid = os.getpid()
    platform = _platforms.get(pid)
    if platform is None:
        platform = _platforms[pid] = Platform(load_settings())
    return platform
