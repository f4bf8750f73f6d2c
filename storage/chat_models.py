"""What a chat or completion request's ``model`` names: a base model, or a team's adapter.

A caller may name

- an allow-listed base model (``Settings.allowed_base_models``), served as it is, or
- a causal-LM version of its own team's registry: ``name``, ``name:version``,
  ``name@alias``, or one of these behind OpenAI's ``ft:`` prefix. Such a version is a
  LoRA adapter (its files under the version's prefix) over the allow-listed base model
  it names, so an alias moved by promotion changes what the name serves at once.

Another team's model, a malformed name and a missing one all raise ``ChatModelNotFound``
with the same wording: nothing tells one from the other. A version of another task, or
a full fine-tune (a whole model, not an adapter), is a ``NotAChatModel`` (the caller's
own: it may know it exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from storage import registry
from storage.base_models import OPENAI_PREFIX
from storage.blobs import Recorded, recorded_under
from storage.openai_names import resolve_fine_tuned

CHAT_TASK = "causal-lm"
_SHOWN = 80  # characters of a name quoted back


class ChatModelNotFound(LookupError):
    pass


class NotAChatModel(ValueError):
    pass


@dataclass(frozen=True)
class ChatAdapter:
    """A team's fine-tuned adapter: the version id (its key on serving workers) and files."""

    version_id: str
    prefix: str
    objects: tuple[Recorded, ...]


@dataclass(frozen=True)
class ChatModel:
    base_model: str
    adapter: ChatAdapter | None = None


def resolve_chat_model(
    session: Session, team_id: str, name: str, allowed_base_models: Mapping[str, str]
) -> ChatModel:
    if name in allowed_base_models:
        return ChatModel(name)
    shown = name[:_SHOWN] + ("…" if len(name) > _SHOWN else "")
    missing = ChatModelNotFound(f"The model {shown!r} does not exist or you do not have access")
    # OpenAI's long name of a fine-tune (ft:<base>:<team>:<suffix>:<job>) first, then a
    # registry reference, with or without the ft: prefix.
    version = resolve_fine_tuned(session, team_id, name)
    if version is None:
        try:
            ref = registry.parse_ref(name.removeprefix(OPENAI_PREFIX))
            version = registry.resolve(session, team_id, ref)
        except (ValueError, LookupError):
            raise missing from None
    if version.task != CHAT_TASK:
        raise NotAChatModel(
            f"{version.name}:{version.version} is a {version.task} model; chat and "
            f"completions take {CHAT_TASK} models or a base model"
        )
    if version.base_model not in allowed_base_models:
        raise NotAChatModel(
            f"{version.name}:{version.version} adapts {version.base_model!r}, which is not a "
            "base model this platform serves"
        )
    if version.artifact != "adapter":
        # A full fine-tune is a whole model: serving workers hold bases and adapters.
        raise NotAChatModel(
            f"{version.name}:{version.version} is a full fine-tune (method 'full'); chat "
            "serves base models and LoRA adapters: download it, or fine-tune with 'lora'"
        )
    objects = tuple(recorded_under(session, version.prefix))
    return ChatModel(version.base_model, ChatAdapter(version.id, version.prefix, objects))
