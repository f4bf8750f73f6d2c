"""Incidents: one notification when a condition starts, repeats while it lasts, one when it ends.

Each pass runs every rule, then for each (rule, subject):
- firing and no open incident: open one and notify;
- firing and open: notify again only once ``alert_repeat_s`` has passed since the last
  notification;
- open but not firing: resolve, with a "resolved" notification, only once the condition
  has stayed clear for ``alert_resolve_after_s``. A condition that flaps inside that
  window stays one incident with one notification, not a storm.

Incident rows are committed before anything is sent, and a notification counts as
sent only once a channel other than the log accepted it, so a webhook that is down
is retried on the next pass instead of being forgotten.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from scheduler.alerts.channels import Channel, configured
from scheduler.alerts.rules import RULES, Context, Firing, Rule
from storage.alerts import Incident
from storage.objects.base import ObjectStore
from storage.platform import Platform
from tunepool.settings import Settings

log = logging.getLogger(__name__)

OPEN, RESOLVED = "open", "resolved"


def notification(incident: Incident, status: str) -> dict[str, Any]:
    return {
        "status": status,
        "incident": incident.id,
        "rule": incident.rule,
        "subject": incident.subject,
        "severity": incident.severity,
        "team_id": incident.team_id,
        "summary": incident.summary,
        "details": incident.details,
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "repeat": incident.notifications > 0 and status == "firing",
    }


def _firing_now(ctx: Context, rules: dict[str, Rule]) -> tuple[dict[tuple[str, str], Firing], bool]:
    firing: dict[tuple[str, str], Firing] = {}
    complete = True
    for name, rule in rules.items():
        try:
            for f in rule(ctx):
                firing[(f.rule, f.subject)] = f
        except Exception:
            # A broken rule must not look like every one of its conditions cleared.
            log.exception("alert rule %s failed", name)
            complete = False
    return firing, complete


def evaluate(
    session: Session,
    settings: Settings,
    store: ObjectStore | None,
    now: float | None = None,
    rules: dict[str, Rule] | None = None,
) -> list[tuple[int, str]]:
    """Update incidents for this pass; returns (incident id, "firing"|"resolved") to send."""
    now = now or time.time()
    ctx = Context(session, settings, store, now)
    firing, complete = _firing_now(ctx, RULES if rules is None else rules)
    open_incidents = {
        (i.rule, i.subject): i
        for i in session.scalars(select(Incident).where(Incident.state == OPEN))
    }
    due: list[tuple[int, str]] = []
    for key, f in firing.items():
        incident = open_incidents.get(key)
        if incident is None:
            incident = Incident(
                rule=f.rule,
                subject=f.subject,
                open_key=f"{f.rule}|{f.subject}",
                team_id=f.team_id,
                severity=f.severity,
                state=OPEN,
                summary=f.summary,
                details=f.details,
                opened_at=now,
                last_seen_at=now,
                notifications=0,
            )
            session.add(incident)
            session.flush()
        else:
            incident.summary, incident.details = f.summary, f.details
            incident.last_seen_at, incident.cleared_at = now, None
        last = incident.last_notified_at
        if last is None or now - last >= settings.alert_repeat_s:
            due.append((incident.id, "firing"))
    if complete:
        for key, incident in open_incidents.items():
            if key in firing:
                continue
            if incident.cleared_at is None:
                incident.cleared_at = now
            if now - incident.cleared_at >= settings.alert_resolve_after_s:
                incident.state, incident.open_key, incident.resolved_at = RESOLVED, None, now
                if incident.notifications > 0:  # nobody heard of it: nothing to resolve
                    due.append((incident.id, "resolved"))
    session.flush()
    return due


def deliver(
    sessions: sessionmaker[Session],
    due: list[tuple[int, str]],
    channels: dict[str, Channel],
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Send each due notification; record the ones a channel (not only the log) accepted."""
    sent: list[dict[str, Any]] = []
    for incident_id, status in due:
        with sessions() as session:
            incident = session.get(Incident, incident_id)
            if incident is None:
                continue
            message = notification(incident, status)
            delivered = 0
            for name, channel in channels.items():
                try:
                    channel(message)
                    delivered += name != "log"
                except Exception as exc:
                    log.warning(
                        "alert channel %s failed for incident %s: %s", name, incident_id, exc
                    )
            if delivered or set(channels) == {"log"}:
                incident.last_notified_at = now or time.time()
                incident.notifications += 1
                session.commit()
                sent.append(message)
    return sent


def run_alerts(platform: Platform, now: float | None = None) -> list[dict[str, Any]]:
    session = platform.sessions()
    try:
        due = evaluate(session, platform.settings, platform.store, now)
        session.commit()
    finally:
        session.close()
    return deliver(platform.sessions, due, configured(platform.settings), now)
