"""The one way a job is made: checked, built, written with its first event.

Every creator goes through here: ``POST /v1/jobs`` (fine-tunes, inference, compress),
the OpenAI-compatible fine-tuning route, and the schedules' retrain and evaluate jobs
(``scheduler.model_updates``). Nothing else constructs a ``Job`` row
(tests/storage/test_job_factory.py scans the packages for it), so a rule about what
may be submitted is written once, here, and holds for every route.

A job that could never be admitted is refused as a value (``storage.refusals.Refusal``:
status, code, field, message), never half-written: the API turns it into its JSON 4xx
(``api.errors.from_refusal``), the retrain scheduler records it on the run.

:func:`create` (:func:`check`, then :func:`write`) adds the row and its first event to
the caller's transaction through the ORM, and the caller commits: ``POST /v1/jobs``
together with its Idempotency-Key's answer and the audit row (api.commit_answer), so a
retry replays the first answer and nothing is half-written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy.orm import Session

from storage import base_models
from storage.ids import new_id
from storage.models import Job, ModelVersion
from storage.priorities import PRIORITIES
from storage.refusals import Refusal, refusal
from storage.runtime_estimates import with_runtime_estimate
from storage.states import JobState, record_event

ADMISSION_REASON = "waiting for the next admission pass"


class FactorySettings(base_models.BaseModelPolicy, Protocol):
    """What the factory reads from the settings (``tunepool.settings.Settings`` is one)."""

    @property
    def max_attempts(self) -> int: ...


@dataclass(frozen=True)
class JobOrder:
    """What a creator asks for. ``base_model``: the name to check against the allow-list
    and the team's models (None for jobs that start from a registered version)."""

    team_id: str
    type: str
    task: str
    spec: Mapping[str, Any]
    priority: str = "normal"
    slots: int = 1
    model_name: str | None = None
    max_attempts: int | None = None
    base_model: str | None = None


@dataclass(frozen=True)
class Checked:
    """An order that passed every check, with what its base model resolved to."""

    order: JobOrder
    base: base_models.Listed | base_models.Noop | ModelVersion | None = field(default=None)


def check(session: Session, settings: FactorySettings, order: JobOrder) -> Checked | Refusal:
    """The base model (allow-list or the team's own), then the team's queue state,
    priority cap and quota, and the pool's shape. A chat fine-tune's order comes back
    with its run time estimated (``storage.runtime_estimates``)."""
    base = None
    if order.base_model is not None:
        try:
            base = base_models.resolve(session, order.team_id, order.base_model, settings)
        except base_models.BaseModelRefused as exc:
            return Refusal(422, "invalid", "base_model", f"base_model: {exc}")
        mismatch = (
            base_models.task_mismatch(base, order.task)
            if isinstance(base, base_models.Listed) and order.type == "finetune"
            else None
        )
        if mismatch is not None:
            return Refusal(422, "invalid", "base_model", f"base_model: {mismatch}")
    found = refusal(session, order.team_id, order.slots, order.priority)
    if found is not None:
        return found
    if order.type == "finetune":
        spec = with_runtime_estimate(session, order.team_id, order.task, order.spec)
        order = order if spec is order.spec else replace(order, spec=spec)
    return Checked(order, base)


def build(checked: Checked, settings: FactorySettings, now: float | None = None) -> Job:
    """The pending row of a checked order, not yet in any session."""
    order = checked.order
    return Job(
        id=new_id("job"),
        team_id=order.team_id,
        type=order.type,
        task=order.task,
        spec=dict(order.spec),
        model_name=order.model_name,
        priority=PRIORITIES[order.priority],
        slots=order.slots,
        state=JobState.PENDING.value,
        reason_code="admission",
        reason=ADMISSION_REASON,
        max_attempts=order.max_attempts or settings.max_attempts,
        created_at=time.time() if now is None else now,
    )


def create(
    session: Session,
    settings: FactorySettings,
    order: JobOrder,
    *,
    accepted: str = "accepted",
    now: float | None = None,
) -> Job | Refusal:
    """Check ``order``, then :func:`write` it; the job, or why it was refused."""
    checked = check(session, settings, order)
    if isinstance(checked, Refusal):
        return checked
    return write(session, settings, checked, accepted=accepted, now=now)


def write(
    session: Session,
    settings: FactorySettings,
    checked: Checked,
    *,
    accepted: str = "accepted",
    now: float | None = None,
) -> Job:
    """Add a checked order's row and its first event (``accepted``: that event's reason)
    to the caller's transaction, flushed; the job. The caller commits."""
    job = build(checked, settings, now)
    session.add(job)
    session.flush()
    record_event(session, job.id, "state", new=JobState.PENDING.value, reason=accepted)
    return job
