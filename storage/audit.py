"""The audit log: who changed what, when. One row per mutating API call, kept in SQL.

Written by the API after each POST/PUT/PATCH/DELETE, whatever its outcome (a refused
or failed change is worth knowing too). Never holds a secret: the request body is not
stored, only the route, the key that called and the answer's status.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.db import insert_named, named, write_core
from storage.models import Base, table_of


def _now() -> float:
    return time.time()


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, default=_now, index=True)
    team_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # who
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    method: Mapped[str] = mapped_column(String(8))  # what
    path: Mapped[str] = mapped_column(String(512))
    endpoint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[int] = mapped_column(Integer)  # with what outcome
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)


# A plain INSERT on the table, built once: nothing reads the row back as an object, and
# the ORM's unit of work cost more than the statement on every mutating call. It has no
# RETURNING of the new id, which nobody reads; on PostgreSQL, fetching it back cost a
# third of the statement's client CPU.
_INSERT = insert_named(table_of(AuditEvent), "audit")


def record(session: Session, **who_what: Any) -> None:
    """Write one audit row (held with the call's other writes inside
    ``storage.db.held_writes``); ``who_what`` are :func:`row`'s arguments."""
    write_core(session, _INSERT, named("audit", row(**who_what)))


def row(
    *,
    team_id: str | None,
    key_id: str | None,
    role: str | None,
    method: str,
    path: str,
    endpoint: str | None,
    status: int,
    remote_addr: str | None,
) -> dict[str, Any]:
    """An audit row's column values, for :func:`record`'s INSERT."""
    return {
        "at": time.time(),
        "team_id": team_id,
        "key_id": key_id,
        "role": role,
        "method": method,
        "path": path[:512],
        "endpoint": endpoint,
        "status": status,
        "remote_addr": (remote_addr or "")[:64] or None,
    }
