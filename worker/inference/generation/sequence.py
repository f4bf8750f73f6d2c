"""One request's life inside the engine: its tokens, text, timing and outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.inference.generation.requests import FinishReason, GenerationRequest
from worker.inference.generation.sampling import Sampler
from worker.inference.generation.stream import Channel
from worker.inference.generation.text import TextAssembler


@dataclass(eq=False)  # identity, not field equality: the engine removes sequences from queues
class Sequence:
    request: GenerationRequest
    channel: Channel
    sampler: Sampler
    text: TextAssembler
    submitted_at: float
    slot: str = ""  # what the keeper routes its row by, once admitted
    token_ids: list[int] = field(default_factory=list)
    time_to_first_token_s: float | None = None
    finish_reason: FinishReason | None = None

    def accept(self, token: int, now: float) -> str:
        """Record a generated token; the text it releases."""
        if self.time_to_first_token_s is None:
            self.time_to_first_token_s = now - self.submitted_at
        self.token_ids.append(token)
        return self.text.add(token)


def stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids from the generation config (chat models often list several)."""
    ids: set[int] = set()
    generation = getattr(model, "generation_config", None)
    for source in (getattr(generation, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return frozenset(ids)
