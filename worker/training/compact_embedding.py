"""Train only the word-embedding rows that a fine-tune can look up.

A classifier fine-tune looks up only the tokens of its own examples. Every other row
of the word-embedding matrix gets no gradient in any step, so under AdamW its moments
stay zero and its one change per step is the decoupled weight decay,
``p *= 1 - lr * weight_decay``. Yet a dense run carries those rows through the
embedding backward, gradient clipping and the optimizer on every step: for MiniLM
11.7 M of its 22.7 M parameters, most of them rows of tokens the data never uses.

``compact_input_embeddings`` swaps the model's input embedding for one that holds the
used rows as its only parameter and applies the untouched rows' decay as one running
factor. Rows that are used get exactly AdamW's update, as in a dense run (a row not in
a step's batch gets a zero gradient there, as it would). The module's state dict is
the ordinary dense ``weight``, so checkpoints, resume and the saved model are what a
dense run writes, up to float rounding of the untouched rows' decay (one product
instead of one multiplication per step).

Not for masked-LM: its output layer shares the embedding matrix, and the softmax over
the vocabulary gives every row a gradient.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class CompactEmbedding(nn.Module):
    def __init__(self, dense: nn.Embedding, used: torch.Tensor) -> None:
        super().__init__()
        weight = dense.weight.detach()
        # Plain attributes, not buffers: DistributedDataParallel would broadcast a buffer
        # of the full matrix on every step, and no state dict should hold them.
        self.used = used.to(weight.device)
        self.remap = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
        self.remap[self.used] = torch.arange(len(self.used), device=weight.device)
        self.untouched = weight.clone()
        self.decay = 1.0  # product of (1 - lr * weight_decay) over the steps taken
        self.rows = nn.Parameter(weight[self.used].clone())
        self.padding_idx = (
            int(self.remap[dense.padding_idx]) if dense.padding_idx is not None else None
        )
        self.register_state_dict_post_hook(_dense_state)
        self.register_load_state_dict_pre_hook(_compact_state)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(self.remap[input_ids], self.rows, self.padding_idx)

    @property
    def weight(self) -> torch.Tensor:
        """The dense matrix a dense run would hold now (for code that reads it)."""
        dense = self.untouched * self.decay
        dense[self.used] = self.rows.detach()
        return dense

    def after_step(self, optimizer: torch.optim.Optimizer, *_: Any) -> None:
        """AdamW's decoupled decay of the untouched rows for the step just taken."""
        for group in optimizer.param_groups:
            if any(p is self.rows for p in group["params"]):
                self.decay *= 1.0 - float(group["lr"]) * float(group["weight_decay"])
                return


def _dense_state(module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    assert isinstance(module, CompactEmbedding)
    del state[prefix + "rows"]  # the same values as module.rows, which .weight places
    state[prefix + "weight"] = module.weight


def _compact_state(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    assert isinstance(module, CompactEmbedding)
    weight = state.pop(prefix + "weight", None)
    if weight is None:
        return
    module.untouched = weight.detach().to(module.untouched.device, module.untouched.dtype).clone()
    module.decay = 1.0
    state[prefix + "rows"] = weight[module.used.to(weight.device)]


def used_token_ids(sequences: Iterable[Iterable[int]], special_ids: Iterable[int]) -> torch.Tensor:
    """Sorted ids of every token the run can look up: its examples' and the specials."""
    seen = set(special_ids)
    for ids in sequences:
        seen.update(ids)
    return torch.tensor(sorted(seen), dtype=torch.long)


def compact_input_embeddings(model: Any, used: torch.Tensor) -> CompactEmbedding | None:
    """Swap in a CompactEmbedding; None (model unchanged) where it would not be exact."""
    dense = model.get_input_embeddings()
    if not isinstance(dense, nn.Embedding) or model.get_output_embeddings() is not None:
        return None  # a tied output layer (masked-LM) gives every row a gradient
    if dense.max_norm is not None or dense.scale_grad_by_freq or dense.sparse:
        return None
    if len(used) >= 0.9 * dense.num_embeddings:
        return None  # little to gain
    compact = CompactEmbedding(dense, used)
    model.set_input_embeddings(compact)
    return compact
