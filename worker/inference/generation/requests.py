"""What a caller asks for, what it gets back, and why a request was refused (no torch here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationRequest:
    """One completion: the prompt as token ids, on a named adapter or the base (None)."""

    prompt_ids: tuple[int, ...]
    adapter: str | None = None
    max_new_tokens: int = 16
    # 0 means greedy; OpenAI's default of 1 is the API's business, not the engine's.
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    # Sampling draws from a generator seeded with this, so the same seed gives the
    # same tokens whatever else shares the batch; None draws a fresh seed.
    seed: int | None = None
    request_id: str = ""


class FinishReason(enum.StrEnum):
    STOP = "stop"  # an end-of-sequence token or a stop string
    LENGTH = "length"  # max_new_tokens reached
    CANCELLED = "cancelled"  # the caller cancelled or dropped its handle
    ERROR = "error"  # the adapter could not be loaded, or the engine shut down


@dataclass(frozen=True)
class Rejection:
    """Why a request was refused before it ran; the API maps `code` to a 4xx/503."""

    code: str  # queue_full | context_length_exceeded | adapter_not_found | invalid_request
    message: str
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenChunk:
    """One generated token and the text that may be shown now (text near a possible stop
    string is held back); a last chunk with no token releases what was held back."""

    token_id: int | None
    text: str


@dataclass(frozen=True)
class Completion:
    """The last event of every request."""

    finish_reason: FinishReason
    text: str
    token_ids: tuple[int, ...]
    usage: Usage
    time_to_first_token_s: float | None
    error: str | None = None


Event = TokenChunk | Completion


@dataclass(frozen=True)
class EngineLimits:
    max_batch_size: int = 32
    """Rows decoded together in one forward pass."""
    max_waiting: int = 64
    """Requests queued beyond the running batch; more are refused with `queue_full`."""
    max_context_tokens: int = 2048
    """Prompt plus max_new_tokens; capped further by the model's position embeddings."""
    max_prefill_tokens: int = 4096
    """Prompt tokens admitted into one prefill, so a burst of long prompts does not stall
    the running rows for long (at least one request is always admitted)."""
    retry_after_s: float = 1.0
    stop_token_ids: frozenset[int] | None = None
    """Tokens that end a request; None: the model's end-of-sequence ids. Benchmarks pass an
    empty set so every path generates exactly max_new_tokens."""
