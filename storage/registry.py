"""The model registry: named aliases over a team's model versions, with their history.

A version (``ModelVersion``) is immutable once a job stores it; what moves is an
alias (``production``, ``staging``, any name) pointing at one version. Every move
is an ``AliasEvent``; ``rollback`` walks that history back like a stack, so two
rollbacks after v1 -> v2 -> v3 land on v1, not back on v3.

References a caller may use: ``name@alias``, ``name:version`` or ``name`` (the
newest version). Malformed references raise ``ValueError``; well-formed ones that
match nothing raise ``LookupError``. Callers own the transaction (flush, no commit).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from storage.models import Base, ModelVersion

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
MAX_VERSION = 999_999_999
VERSION = re.compile(r"[1-9][0-9]{0,8}")
# Versions of these tasks predict (online, batch inference) and compress: the inference
# engine loads classifiers. A masked-LM version has no labels to predict; it is a base
# for fine-tunes.
PREDICTING_TASKS = ("token-classification", "sequence-classification")


def cannot_predict(version: ModelVersion) -> str | None:
    """Why ``version`` cannot predict or be compressed, or None if it can."""
    if version.task in PREDICTING_TASKS:
        return None
    return (
        f"{version.name}:{version.version} is a {version.task} model; predictions, batch "
        f"inference and compress take {' or '.join(PREDICTING_TASKS)} models (use a "
        f"{version.task} model as the base_model of a fine-tune instead)"
    )


def _now() -> float:
    return time.time()


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("team_id", "name", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Float, default=_now)


class AliasEvent(Base):
    """Append-only: every move of an alias, who made it and why."""

    __tablename__ = "model_alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(64))
    # "set" or "rollback": rollbacks pop the history instead of pushing onto it.
    kind: Mapped[str] = mapped_column(String(16), default="set")
    old_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    new_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float, default=_now)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(160), default="")


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return self.name


def parse_ref(ref: str) -> ModelRef:
    """``name@alias`` | ``name:version`` | ``name``; ValueError saying what is wrong."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        if not ALIAS.match(alias):
            raise ValueError(f"alias in {ref!r}: letters, digits, '_' and '-', starting a letter")
        parsed = ModelRef(name, alias=alias)
    elif ":" in ref:
        name, _, raw = ref.partition(":")
        # ASCII digits, and no more than the column holds (a 20-digit version overflowed
        # the query: a 500).
        if not VERSION.fullmatch(raw):
            raise ValueError(f"version in {ref!r} must be a whole number from 1 to {MAX_VERSION}")
        parsed = ModelRef(name, version=int(raw))
    else:
        parsed = ModelRef(ref)
    if not NAME.match(parsed.name):
        raise ValueError(
            f"model name in {ref!r}: letters, digits, '.', '_', '-'; starts with a letter or digit"
        )
    return parsed


def get_version(session: Session, team_id: str, name: str, version: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.team_id == team_id,
            ModelVersion.name == name,
            ModelVersion.version == version,
        )
    )


def latest_version(session: Session, team_id: str, name: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.team_id == team_id, ModelVersion.name == name)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    )


def next_version(session: Session, team_id: str, name: str) -> int:
    newest = session.scalar(
        select(func.max(ModelVersion.version)).where(
            ModelVersion.team_id == team_id, ModelVersion.name == name
        )
    )
    return (newest or 0) + 1


def resolve(session: Session, team_id: str, ref: str | ModelRef) -> ModelVersion:
    """The version a reference names, within one team (another team's model is not found)."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.alias is not None:
        row = _alias_row(session, team_id, parsed.name, parsed.alias)
        if row is None:
            if latest_version(session, team_id, parsed.name) is None:
                raise LookupError(f"model {parsed.name} not found")
            raise LookupError(f"model {parsed.name} has no alias {parsed.alias!r}")
        found = get_version(session, team_id, parsed.name, row.version)
    elif parsed.version is not None:
        found = get_version(session, team_id, parsed.name, parsed.version)
        if found is None and latest_version(session, team_id, parsed.name) is not None:
            raise LookupError(f"model {parsed.name} has no version {parsed.version}")
    else:
        found = latest_version(session, team_id, parsed.name)
    if found is None:
        raise LookupError(f"model {parsed.name} not found")
    return found


def _alias_row(
    session: Session, team_id: str, name: str, alias: str, *, lock: bool = False
) -> ModelAlias | None:
    query = select(ModelAlias).where(
        ModelAlias.team_id == team_id, ModelAlias.name == name, ModelAlias.alias == alias
    )
    # Moves lock the row (PostgreSQL) so two concurrent moves record a consistent old_version.
    return session.scalar(query.with_for_update() if lock else query)


def _move(
    session: Session,
    team_id: str,
    name: str,
    alias: str,
    version: int,
    *,
    kind: str,
    reason: str,
    actor: str,
) -> AliasEvent:
    now = time.time()
    row = _alias_row(session, team_id, name, alias, lock=True)
    old = row.version if row is not None else None
    if row is None:
        session.add(
            ModelAlias(team_id=team_id, name=name, alias=alias, version=version, updated_at=now)
        )
    else:
        row.version, row.updated_at = version, now
    event = AliasEvent(
        team_id=team_id,
        name=name,
        alias=alias,
        kind=kind,
        old_version=old,
        new_version=version,
        at=now,
        reason=reason,
        actor=actor,
    )
    session.add(event)
    session.flush()
    return event


def set_alias(
    session: Session,
    team_id: str,
    name: str,
    alias: str,
    version: int,
    *,
    reason: str,
    actor: str,
) -> AliasEvent:
    """Point ``name@alias`` at ``version`` (which must exist); creates the alias if new."""
    if not ALIAS.match(alias):
        raise ValueError(f"alias {alias!r}: letters, digits, '_' and '-', starting with a letter")
    if get_version(session, team_id, name, version) is None:
        if latest_version(session, team_id, name) is None:
            raise LookupError(f"model {name} not found")
        raise LookupError(f"model {name} has no version {version}")
    return _move(session, team_id, name, alias, version, kind="set", reason=reason, actor=actor)


def rollback(
    session: Session, team_id: str, name: str, alias: str, *, reason: str, actor: str
) -> AliasEvent:
    """Move the alias back to the version it pointed to before its current one."""
    history = alias_history(session, team_id, name, alias)
    if not history:
        raise LookupError(f"model {name} has no alias {alias!r}")
    stack = _replay(history)
    if len(stack) < 2:
        raise LookupError(f"{name}@{alias} has no earlier version to roll back to")
    return _move(
        session, team_id, name, alias, stack[-2], kind="rollback", reason=reason, actor=actor
    )


def _replay(history: list[AliasEvent]) -> list[int]:
    """The alias's versions as a stack: sets push, rollbacks pop (oldest event first)."""
    stack: list[int] = []
    for event in history:
        if event.kind == "rollback" and stack:
            stack.pop()
            if not stack or stack[-1] != event.new_version:
                stack.append(event.new_version)
        elif not stack or stack[-1] != event.new_version:
            stack.append(event.new_version)
    return stack


def aliases(session: Session, team_id: str, name: str) -> dict[str, int]:
    rows = session.scalars(
        select(ModelAlias)
        .where(ModelAlias.team_id == team_id, ModelAlias.name == name)
        .order_by(ModelAlias.alias)
    )
    return {row.alias: row.version for row in rows}


def alias_history(
    session: Session, team_id: str, name: str, alias: str | None = None
) -> list[AliasEvent]:
    """Every move of the model's aliases (or of one alias), oldest first."""
    query = select(AliasEvent).where(AliasEvent.team_id == team_id, AliasEvent.name == name)
    if alias is not None:
        query = query.where(AliasEvent.alias == alias)
    return list(session.scalars(query.order_by(AliasEvent.id)))
