"""What a job may start from (``base_model``): one rule for every route and for the worker.

A base model is either

- a name on the operator's allow-list (``Settings.allowed_base_models``: the packaged
  MiniLM plus ``TUNEPOOL_BASE_MODELS``), whose configured source (a local directory
  or a hub id, the operator's) the worker loads, or
- a model of the caller's own team in the registry: ``name``, ``name:version``,
  ``name@alias``, or one of these behind OpenAI's ``ft:`` prefix; the worker fetches
  that version's files from the object store.

The string a caller sends is never a path, an object key or a URL: a team naming
another team's stored files would train on, and so copy, that team's private model.
Allow-listed names are decided without the database (the submit path stays one
statement); registry references cost one lookup, so an unknown name is refused at
submit instead of failing later on a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from storage import registry
from storage.models import ModelVersion
from storage.registry import ModelRef, parse_ref
from tunepool.builtin_models import CAUSAL_LM_TASK, SOURCE_TASKS

NOOP_PREFIX = "noop:"
OPENAI_PREFIX = "ft:"
TEAM_FORMS = "a model of your team: name, name:version, name@alias, ft:name:version"
_SHOWN = 80  # characters of a refused name quoted back


class BaseModelPolicy(Protocol):
    """What the rule reads from the settings (``tunepool.settings.Settings`` is one)."""

    @property
    def allowed_base_models(self) -> Mapping[str, str]: ...

    @property
    def allow_noop_engine(self) -> bool: ...


@dataclass(frozen=True)
class Listed:
    """An allow-listed base model; ``source`` is the operator's directory or hub id."""

    name: str
    source: str


@dataclass(frozen=True)
class Noop:
    """worker.engines.noop instead of training (only where the settings allow it)."""

    behaviour: str


class BaseModelRefused(ValueError):
    """Not a base model this team may use; the message says what is allowed."""


def classify(name: str, policy: BaseModelPolicy) -> Listed | Noop | ModelRef:
    """What ``name`` asks for, without reading the registry; BaseModelRefused if nothing."""
    allowed = policy.allowed_base_models
    source = allowed.get(name)
    if source is not None:
        return Listed(name, source)
    if policy.allow_noop_engine and name.startswith(NOOP_PREFIX):
        return Noop(name.removeprefix(NOOP_PREFIX))
    try:
        return parse_ref(name.removeprefix(OPENAI_PREFIX))
    except ValueError:
        raise refused(allowed, _why_not_a_name(name)) from None


def resolve(
    session: Session, team_id: str, name: str, policy: BaseModelPolicy
) -> Listed | Noop | ModelVersion:
    """The allow-list entry, no-op behaviour, or the team's own version ``name`` means.

    Another team's model is not found, exactly like a missing one.
    """
    choice = classify(name, policy)
    if not isinstance(choice, ModelRef):
        return choice
    try:
        return registry.resolve(session, team_id, choice)
    except LookupError as exc:
        raise refused(policy.allowed_base_models, str(exc).strip("'\"")) from None


def task_mismatch(listed: Listed, task: str) -> str | None:
    """Why the builtin model ``listed`` cannot be fine-tuned for ``task``, else None.

    The packaged MiniLM is an encoder and SmolLM2 a chat model: a chat fine-tune of the
    one, or a NER fine-tune of the other, is refused at submit, not found on a worker.
    An operator's own source is the operator's call.
    """
    kind = SOURCE_TASKS.get(listed.source)
    if kind is None or (kind == CAUSAL_LM_TASK) == (task == CAUSAL_LM_TASK):
        return None
    if kind == CAUSAL_LM_TASK:
        return f"{listed.name} is a chat model: it is fine-tuned with task {CAUSAL_LM_TASK}"
    return f"{listed.name} is an encoder: task {CAUSAL_LM_TASK} needs a chat model"


def refused(allowed: Mapping[str, str], detail: str) -> BaseModelRefused:
    """``detail`` (what is wrong), then everything the caller may use instead."""
    listed = ", ".join(sorted(allowed)) or "none"
    return BaseModelRefused(
        f"{detail}; use a base model of this platform ({listed}) or {TEAM_FORMS}"
    )


def _why_not_a_name(name: str) -> str:
    shown = repr(name[:_SHOWN] + ("…" if len(name) > _SHOWN else ""))
    if "/" in name or "\\" in name or ".." in name or "://" in name:
        return f"{shown} is not a model name (paths, object keys and URLs are not accepted)"
    return f"{shown} is not a model name"
