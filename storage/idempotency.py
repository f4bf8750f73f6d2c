"""Idempotency keys: a retried create returns the first answer and creates nothing new.

One row per (team, key): the request's fingerprint, and once the first call has
answered, its status and body. The unique constraint is what makes two concurrent
retries safe: the second insert finds the first one's row and that caller is told to
retry later (or, once the first has answered, gets its answer).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.db import execute_core, write_core
from storage.models import Base, table_of


def _now() -> float:
    return time.time()


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    # The unique constraint's index leads with team_id: it serves lookups by team too.
    __table_args__ = (UniqueConstraint("team_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    # None while the first call is still being answered.
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=_now, index=True)


# Every write here goes to the table, not through the ORM, as a statement built once with
# bound parameters: no caller holds these rows as objects, an ORM-enabled UPDATE evaluates
# its WHERE against the identity map after running it, and building a statement's values
# and criteria anew cost more than executing it, on every submit (``execute_core`` says
# why they skip Session.execute). The answer's parameters are named apart, for it is held
# with the call's other writes (``storage.db.held_writes``).
_TABLE = table_of(IdempotencyKey)
_C = _TABLE.c
_THIS_KEY = (_C.team_id == bindparam("w_team_id"), _C.key == bindparam("w_key"))
_ANSWER_RESERVATION = (
    update(_TABLE)
    .where(_C.team_id == bindparam("answer_team_id"), _C.key == bindparam("answer_key"))
    .values(
        status=bindparam("answer_status"),
        body=bindparam("answer_body"),
        content_type=bindparam("answer_content_type"),
    )
)


@cache
def _statements(dialect: str) -> tuple[Any, Any]:
    """(reserve, keep) for a dialect: INSERT … ON CONFLICT (PostgreSQL and SQLite both
    have it, each in its own construct)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    keys = ["team_id", "key"]
    reserve = insert(_TABLE).on_conflict_do_nothing(index_elements=keys).returning(_C.id)
    keep = insert(_TABLE)
    keep = keep.on_conflict_do_update(
        index_elements=keys,
        set_={name: getattr(keep.excluded, name) for name in ("status", "body", "content_type")},
    )
    return reserve, keep


_FORGET = delete(_TABLE).where(*_THIS_KEY)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def reserve(session: Session, team_id: str, key: str, fingerprint: str) -> bool:
    """Reserve ``key`` in the caller's transaction; False if the team has used it already.

    The row commits with whatever the request commits, so a request that fails before
    committing leaves the key free. A concurrent first call's uncommitted reservation
    makes this wait for that call's transaction (the unique index), then see it.
    """
    row = {"team_id": team_id, "key": key, "fingerprint": fingerprint, "created_at": time.time()}
    return execute_core(session, _statements(_dialect(session))[0], row).first() is not None


def answered_row(
    team_id: str, key: str, fingerprint: str, answer: tuple[int, str, str | None]
) -> dict[str, Any]:
    """A key's row with its answer, for :func:`keep_answer`'s INSERT."""
    status, body, content_type = answer
    return {
        "team_id": team_id,
        "key": key,
        "fingerprint": fingerprint,
        "created_at": time.time(),
        "status": status,
        "body": body,
        "content_type": content_type,
    }


def keep_answer(
    session: Session,
    team_id: str,
    key: str,
    fingerprint: str,
    answer: tuple[int, str, str | None],
) -> None:
    """Keep (status, body, content type) for retries: an update of the reservation, or a
    new row where the request ended without committing it (an answer of 4xx)."""
    execute_core(
        session,
        _statements(_dialect(session))[1],
        answered_row(team_id, key, fingerprint, answer),
    )


def answer_reservation(
    session: Session, team_id: str, key: str, answer: tuple[int, str, str | None]
) -> None:
    """Write the answer into this transaction's own reservation (one UPDATE, held with
    the call's other writes inside ``storage.db.held_writes``)."""
    status, body, content_type = answer
    write_core(
        session,
        _ANSWER_RESERVATION,
        {
            "answer_team_id": team_id,
            "answer_key": key,
            "answer_status": status,
            "answer_body": body,
            "answer_content_type": content_type,
        },
    )


def forget(session: Session, team_id: str, key: str) -> None:
    """Free the key: the call has no answer worth replaying (5xx, or it never answered)."""
    session.execute(_FORGET, {"w_team_id": team_id, "w_key": key})


def expire(session: Session, older_than: float) -> int:
    """Delete the keys created before ``older_than`` (a time); how many went."""
    result = session.execute(delete(_TABLE).where(_C.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def find(session: Session, team_id: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.team_id == team_id, IdempotencyKey.key == key)
    )
