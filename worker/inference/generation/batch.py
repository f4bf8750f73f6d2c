"""The runner of batches: one KV cache for all running rows, grown and shrunk between steps.

Rows are left-padded so that every row's tokens end at the last column: a decode
step is then one forward pass of one token per row, whatever the rows' lengths.
Each row's position ids count its own tokens only, and the attention mask hides
its padding, so a row computes what it would compute alone. New rows are
prefilled together in one pass and their cache is concatenated to the running
one (the shorter side padded on the left); finished rows are dropped and columns
that have become padding for every remaining row are cut off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

Forward = Callable[..., Any]
_PAD = 0  # any valid id: padded positions are masked out and never attended to


class RunningBatch:
    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")  # the model's: inputs are built there
        self.cache: DynamicCache | None = None
        self.lengths = torch.zeros(0, dtype=torch.long, device=self.device)  # real tokens per row

    @property
    def size(self) -> int:
        return int(self.lengths.numel())

    def prefill(self, forward: Forward, prompts: list[tuple[int, ...]]) -> torch.Tensor:
        """Run the prompts of new rows, append the rows; logits of their last tokens."""
        lengths = torch.tensor([len(p) for p in prompts], dtype=torch.long)
        width = int(lengths.max())
        rows = [(_PAD,) * (width - len(p)) + tuple(p) for p in prompts]
        ids = torch.tensor(rows, dtype=torch.long, device=self.device)
        lengths = lengths.to(self.device)
        mask = _left_padded_mask(lengths, width)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = forward(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # only the last position's logits are sampled from
        )
        self._append(out.cache, lengths)
        return out.logits[:, -1, :]

    def decode(self, forward: Forward, tokens: list[int]) -> torch.Tensor:
        """Feed one token per row; the logits for each row's next token."""
        assert self.cache is not None
        width = self.cache.get_seq_length() + 1
        out = forward(
            input_ids=torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None],
            attention_mask=_left_padded_mask(self.lengths + 1, width),
            position_ids=self.lengths[:, None],
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache
        self.lengths = self.lengths + 1
        return out.logits[:, -1, :]

    def keep(self, rows: list[int]) -> None:
        """Drop every row not in `rows` (in this order) and the columns only they needed."""
        if len(rows) == self.size:
            return
        if not rows:
            self.cache, self.lengths = None, self.lengths[:0]
            return
        assert self.cache is not None
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.lengths = self.lengths[index]
        cut = self.cache.get_seq_length() - int(self.lengths.max())
        self.cache = DynamicCache(
            ddp_cache_data=[(k[index, :, cut:], v[index, :, cut:]) for k, v in _kv(self.cache)]
        )

    def _append(self, new: DynamicCache, lengths: torch.Tensor) -> None:
        if self.cache is None:
            self.cache, self.lengths = new, lengths
            return
        width = max(self.cache.get_seq_length(), new.get_seq_length())
        layers = [
            (
                torch.cat([_pad_left(k, width), _pad_left(nk, width)]),
                torch.cat([_pad_left(v, width), _pad_left(nv, width)]),
            )
            for (k, v), (nk, nv) in zip(_kv(self.cache), _kv(new), strict=True)
        ]
        self.cache = DynamicCache(ddp_cache_data=layers)
        self.lengths = torch.cat([self.lengths, lengths])


def check_full_attention(config: Any) -> None:
    """Refuse models whose cache is not one plain layer per block (e.g. sliding windows):
    cutting and padding their caches column-wise would be wrong."""
    cache = DynamicCache(config=config)
    if not all(type(layer) is DynamicLayer for layer in cache.layers):
        raise ValueError(
            "continuous batching here needs full-attention layers; use the vLLM backend"
        )


def _kv(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(keys, values) for keys, values, _ in cache]


def _pad_left(states: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - states.shape[2]
    return torch.nn.functional.pad(states, (0, 0, missing, 0)) if missing else states


def _left_padded_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    columns = torch.arange(width, device=lengths.device)
    return (columns[None, :] >= (width - lengths)[:, None]).long()
