"""Alert incidents: one row per (rule, subject) episode, from first firing to resolved."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class Incident(Base):
    __tablename__ = "alert_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(256))
    # "<rule>|<subject>" while open, NULL once resolved: at most one open incident per
    # condition, enforced by the database (NULLs never collide, on SQLite or PostgreSQL).
    open_key: Mapped[str | None] = mapped_column(String(330), unique=True, nullable=True)
    team_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | resolved
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    # When the condition was last seen clear while the incident is open (None: firing).
    cleared_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_notified_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
