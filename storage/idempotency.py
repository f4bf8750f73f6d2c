"""Idempotency keys: a retried create returns the first answer and creates nothing new.

One row per (team, key): the request's fingerprint, and once the first call has
answered, its status and body. The unique constraint is what makes two concurrent
retries safe: the second insert finds the first one's row and that caller is told to
retry later (or, once the first has answered, gets its answer).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.models import Base


def _now() -> float:
    return time.time()


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("team_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(40), index=True)
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # None while the first call is still being answered.
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now, index=True)


def _insert(session: Session) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL and SQLite both do)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(IdempotencyKey)
    return sqlite.insert(IdempotencyKey)


def reserve(session: Session, team_id: str, key: str, fingerprint: str) -> bool:
    """Reserve ``key`` in the caller's transaction; False if the team has used it already.

    The row commits with whatever the request commits, so a request that fails before
    committing leaves the key free. A concurrent first call's uncommitted reservation
    makes this wait for that call's transaction (the unique index), then see it.
    """
    statement = (
        _insert(session)
        .values(team_id=team_id, key=key, fingerprint=fingerprint, created_at=time.time())
        .on_conflict_do_nothing(index_elements=["team_id", "key"])
        .returning(IdempotencyKey.id)
    )
    return session.execute(statement).first() is not None


def keep_answer(
    session: Session,
    team_id: str,
    key: str,
    fingerprint: str,
    answer: tuple[int, str, str | None],
) -> None:
    """Keep (status, body, content type) for retries: an update of the reservation, or a
    new row where the request ended without committing it (an answer of 4xx)."""
    status, body, content_type = answer
    statement = _insert(session).values(
        team_id=team_id,
        key=key,
        fingerprint=fingerprint,
        created_at=time.time(),
        status=status,
        body=body,
        content_type=content_type,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["team_id", "key"],
            set_={"status": status, "body": body, "content_type": content_type},
        )
    )


def answer_reservation(
    session: Session, team_id: str, key: str, answer: tuple[int, str, str | None]
) -> None:
    """Write the answer into this transaction's own reservation (one UPDATE)."""
    status, body, content_type = answer
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.team_id == team_id, IdempotencyKey.key == key)
        .values(status=status, body=body, content_type=content_type)
    )


def forget(session: Session, team_id: str, key: str) -> None:
    """Free the key: the call has no answer worth replaying (5xx, or it never answered)."""
    session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.team_id == team_id, IdempotencyKey.key == key)
    )


def expire(session: Session, older_than: float) -> int:
    """Delete the keys created before ``older_than`` (a time); how many went."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def find(session: Session, team_id: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.team_id == team_id, IdempotencyKey.key == key)
    )
