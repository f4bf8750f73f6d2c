"""Choose each row's next token under its own temperature, top-p and seeded generator.

Greedy rows share one argmax over the batch; sampled rows draw one by one from
their own `torch.Generator`, so a request's tokens depend on its seed and its
logits only, never on which other requests share the batch.
"""

from __future__ import annotations

import random

import torch


class Sampler:
    """The sampling state of one request."""

    def __init__(self, temperature: float, top_p: float, seed: int | None) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generator: torch.Generator | None = None
        if temperature > 0:
            self.generator = torch.Generator().manual_seed(
                seed if seed is not None else random.SystemRandom().randrange(2**63)
            )

    @property
    def greedy(self) -> bool:
        return self.generator is None

    def draw(self, logits: torch.Tensor) -> int:
        """One token from a row of logits (1-D, vocabulary-sized)."""
        if self.generator is None:
            return int(logits.argmax())
        # On the CPU, where the generator lives (a row per request: a small copy on a GPU).
        probs = torch.softmax(logits.float().cpu() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            # Keep the smallest prefix whose mass reaches top_p; the first token always stays.
            outside = sorted_probs.cumsum(-1) - sorted_probs >= self.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def next_tokens(logits: torch.Tensor, samplers: list[Sampler]) -> list[int]:
    """The next token of every row of `logits` (rows x vocabulary)."""
    tokens = logits.argmax(-1).tolist()
    for row, sampler in enumerate(samplers):
        if not sampler.greedy:
            tokens[row] = sampler.draw(logits[row])
    return tokens
