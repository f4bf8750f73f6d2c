"""The serving transport between the API and the inference (serving) workers: key names
and the shape of every message, defined once for both sides (DESIGN §7).

- Each serving worker consumes its own Redis stream (``request_stream``) in the
  consumer group ``GROUP``; an entry is a ``Request``. The stream holds what the worker
  has not finished yet (waiting and running): a worker deletes an entry once answered, so
  the stream's length is its queue depth, and the API refuses to add beyond the capacity
  the worker advertises.
- The worker answers into the request's own reply stream (``reply_stream(id)``, with a
  TTL): zero or more ``chunk`` entries (a chat reply's tokens, later), then one ``end``
  (the answer) or one ``error`` (a ``Failure``). A one-shot answer is a single ``end``.
- A client that stops reading (it disconnected, or its relay was closed) marks the
  request abandoned (``abandoned_key(id)``, with a TTL); the worker sees the mark when
  it writes the next chunk and stops generating (``Abandoned``).
- Each worker advertises itself (``Advert``) under ``advert_key(name)`` with an expiry,
  refreshed by its heartbeat, and in the ``WORKERS`` sorted set (score: last beat). An
  advert that expired is a worker that died: the API stops waiting for it.

Everything is JSON in Redis strings; nothing here imports torch, Flask or Celery.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import redis

PREFIX = "tunepool:serving"
# Sorted set of serving worker names, scored by the time of their last beat.
WORKERS = f"{PREFIX}:workers"
GROUP = "serving"


class Kind(StrEnum):
    """What a request asks for; a worker advertises the kinds it answers."""

    PREDICT = "predict"  # encoder predictions (token and sequence classification)
    REPORT = "report"  # a fine-tune's validate_only report (tokenizer statistics)
    CHAT = "chat"  # a chat or text completion, its tokens streamed as chunks


def base_key(base_model: str) -> str:
    """A resident base model's key in an advert's ``models`` (adapters are version ids)."""
    return f"base:{base_model}"


class ReplyType(StrEnum):
    CHUNK = "chunk"
    END = "end"
    ERROR = "error"


def request_stream(worker: str, instance: str) -> str:
    """Per start of a worker: a restarted worker never inherits requests sent to the last."""
    return f"{PREFIX}:requests:{worker}:{instance}"


def advert_key(worker: str) -> str:
    return f"{PREFIX}:worker:{worker}"


def reply_stream(request_id: str) -> str:
    return f"{PREFIX}:reply:{request_id}"


def abandoned_key(request_id: str) -> str:
    return f"{PREFIX}:abandoned:{request_id}"


@dataclass(frozen=True)
class Request:
    kind: str
    body: dict[str, Any]
    # Unix time after which nobody waits for the answer: the worker skips it.
    deadline: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def reply(self) -> str:
        return reply_stream(self.id)

    def to_fields(self) -> dict[str, str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "deadline": repr(self.deadline),
            "body": json.dumps(self.body, separators=(",", ":")),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> Request:
        text = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            kind=text["kind"],
            body=json.loads(text["body"]),
            deadline=float(text["deadline"]),
            id=text["id"],
        )


@dataclass(frozen=True)
class Failure:
    """Why a request got no answer, in the API's error shape (status, code, message, ...)."""

    status: int
    code: str
    message: str
    field: str | None = None
    line: int | None = None


class Refused(Exception):
    """Raised by a worker's handler: the request is answered with this ``Failure``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Abandoned(Exception):
    """Raised on a worker when the request's client is gone: stop, answer nothing."""


@dataclass(frozen=True)
class ReplyEntry:
    type: ReplyType
    data: Any

    def to_fields(self) -> dict[str, str]:
        data = asdict(self.data) if isinstance(self.data, Failure) else self.data
        return {"t": self.type.value, "d": json.dumps(data, separators=(",", ":"))}

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> ReplyEntry:
        text = {_text(k): _text(v) for k, v in fields.items()}
        kind = ReplyType(text["t"])
        data = json.loads(text["d"])
        return cls(kind, Failure(**data) if kind is ReplyType.ERROR else data)


@dataclass
class Advert:
    """What a serving worker tells the routers at every beat."""

    name: str
    # New at every start: a request sent to an earlier instance of the same name is lost.
    instance: str
    host: str
    pid: int
    kinds: list[str]
    capacity: int  # requests its stream may hold (waiting and running)
    threads: int  # requests it works on at once
    queue_depth: int
    # Per held model (a version id): bytes, and requests, inputs and passes served.
    models: dict[str, dict[str, int]]
    loading: list[str]
    cache_bytes: int
    cache_max_bytes: int
    started_at: float
    beat_at: float
    # Stopping: finishes what it has, takes nothing new.
    draining: bool = False

    @property
    def stream(self) -> str:
        return request_stream(self.name, self.instance)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Advert:
        return cls(**json.loads(raw))

    def holds(self, model: str) -> bool:
        return model in self.models or model in self.loading


def live_workers(client: redis.Redis) -> list[Advert]:
    """The adverts of the serving workers alive now (an expired advert is a dead worker)."""
    members: Any = client.zrange(WORKERS, 0, -1)
    if not members:
        return []
    raw: Any = client.mget([advert_key(_text(member)) for member in members])
    return [Advert.from_json(value) for value in raw if value is not None]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
