"""Many LoRA adapters on one unmodified base model, applied per row in one forward pass.

The way S-LoRA and Punica serve adapters, without their GPU kernels: for every
targeted linear layer the resident adapters' A and B matrices are stacked into
`[adapters, in, rank]` and `[adapters, rank, out]` tensors (ranks zero-padded to
the largest), and a forward hook adds `x[rows] @ A[a] @ B[a]` to the base
layer's output for each adapter `a` in the batch, as two batched matmuls over
the rows grouped by adapter. Per step that is a handful of tensor operations per
layer whatever the number of adapters, where a per-adapter loop (PEFT's
mixed-adapter batches) pays several operations per adapter per layer. The base
weights are never touched, so rows without an adapter compute the plain base.

Hooks are PyTorch's public `register_forward_hook`; adapter files are read with
PEFT's public config and weight loaders. Only plain LoRA on `nn.Linear` is
accepted; anything else (DoRA, trained biases, extra saved modules) is refused
with the reason, as it would otherwise be served wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

# PEFT's saved key: "base_model.model.<module path>.lora_A.weight" (adapter name stripped).
_PREFIX = "base_model.model."
_SUFFIXES = {".lora_A.weight": "A", ".lora_B.weight": "B"}
# LoRA variants whose forward is not x @ A @ B * scale: serving them as plain LoRA would be wrong.
_VARIANTS = {
    "use_dora": "DoRA",
    "lora_bias": "trained LoRA biases",
    "modules_to_save": "fully trained extra modules (modules_to_save)",
    "alpha_pattern": "per-module alphas (alpha_pattern)",
    "fan_in_fan_out": "fan_in_fan_out (Conv1D) layers",
    "target_parameters": "LoRA on bare parameters (target_parameters)",
    "trainable_token_indices": "trained token embeddings",
    "layer_replication": "layer replication",
    "use_qalora": "QA-LoRA",
    "use_bdlora": "BD-LoRA",
    "alora_invocation_tokens": "activated LoRA",
}


class UnsupportedAdapter(ValueError):
    """The adapter is valid PEFT but not plain LoRA on linear layers."""


@dataclass(frozen=True)
class LoraPair:
    a: torch.Tensor  # [in, rank]
    b: torch.Tensor  # [rank, out], scale folded in


LoraWeights = dict[str, LoraPair]  # module path -> its pair


def read_lora(path: Path, model: torch.nn.Module) -> LoraWeights:
    """An adapter directory's LoRA pairs for `model`'s modules, checked and scaled."""
    from peft import LoraConfig, PeftConfig
    from peft.utils import load_peft_weights

    config = PeftConfig.from_pretrained(str(path))
    if not isinstance(config, LoraConfig):
        raise UnsupportedAdapter(f"only LoRA adapters are served, not {config.peft_type}")
    for attribute, what in _VARIANTS.items():
        if getattr(config, attribute, None):
            raise UnsupportedAdapter(f"{what} cannot be served from a shared base")
    if config.bias != "none":
        raise UnsupportedAdapter(f"trained biases (bias={config.bias!r}) cannot be served")
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_peft_weights(str(path), device="cpu").items():
        module, half = _parse_key(key)
        halves.setdefault(module, {})[half] = tensor
    parameter = next(model.parameters())
    pairs: LoraWeights = {}
    for module, found in halves.items():
        if set(found) != {"A", "B"}:
            raise ValueError(f"{module} has only one of lora_A and lora_B")
        a, b = found["A"], found["B"]
        layer = _linear(model, module)
        rank = a.shape[0]
        if a.shape != (rank, layer.in_features) or b.shape != (layer.out_features, rank):
            raise ValueError(
                f"{module}: LoRA shapes {tuple(a.shape)} and {tuple(b.shape)} do not fit a "
                f"{layer.in_features}->{layer.out_features} layer"
            )
        rank_scale = math.sqrt(rank) if config.use_rslora else rank
        scale = config.lora_alpha / rank_scale
        pairs[module] = LoraPair(
            a=a.t().to(parameter.device, parameter.dtype).contiguous(),
            b=(b.t() * scale).to(parameter.device, parameter.dtype).contiguous(),
        )
    if not pairs:
        raise ValueError("the adapter holds no LoRA weights")
    return pairs


def lora_bytes(weights: LoraWeights) -> int:
    return sum(t.numel() * t.element_size() for p in weights.values() for t in (p.a, p.b))


def _parse_key(key: str) -> tuple[str, str]:
    for suffix, half in _SUFFIXES.items():
        if key.startswith(_PREFIX) and key.endswith(suffix):
            return key[len(_PREFIX) : -len(suffix)], half
    raise UnsupportedAdapter(f"weight {key!r} is not a LoRA A or B matrix")


def _linear(model: torch.nn.Module, name: str) -> torch.nn.Linear:
    try:
        layer = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the base model has no module {name!r}") from None
    if not isinstance(layer, torch.nn.Linear):
        raise UnsupportedAdapter(f"{name} is a {type(layer).__name__}, not a linear layer")
    return layer


@dataclass
class _Stack:
    """One linear layer's adapters, stacked."""

    keys: tuple[str, ...]
    a: torch.Tensor  # [adapters, in, rank]
    b: torch.Tensor  # [adapters, rank, out]
    hook: RemovableHandle


@dataclass(frozen=True)
class _Route:
    """Where one layer's adapter rows go in the current batch."""

    pick: torch.Tensor | None  # which stacked adapters the batch uses (None: all)
    gather: torch.Tensor  # [used * per] batch rows, grouped by adapter (repeats pad groups)
    valid: torch.Tensor | None  # positions of real rows in `gather` (None: no padding)
    rows: torch.Tensor  # the batch row of each real position
    per: int  # rows per adapter group


class LoraStack:
    """Resident LoRA adapters of one base model; rows are routed per forward pass."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self._adapters: dict[str, LoraWeights] = {}  # views into the stacks
        self._stacks: dict[str, _Stack] = {}  # module path -> its stack
        self._batch: tuple[str | None, ...] | None = None  # adapter key per row, while routed
        self._routes: dict[tuple[str, ...], _Route | None] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._adapters

    def __len__(self) -> int:
        return len(self._adapters)

    @torch.no_grad()
    def add(self, key: str, weights: LoraWeights) -> None:
        if key in self._adapters:
            raise KeyError(f"adapter {key!r} is already resident")
        self._adapters[key] = dict(weights)
        for module in weights:
            self._restack(module)

    @torch.no_grad()
    def remove(self, key: str) -> None:
        for module in self._adapters.pop(key):
            self._restack(module)

    @contextmanager
    def routed(self, batch: Sequence[str | None]) -> Iterator[None]:
        """Within: row i of every forward pass gets adapter batch[i] (None: the plain base)."""
        unknown = {k for k in batch if k is not None and k not in self._adapters}
        if unknown:
            raise KeyError(f"adapters not resident: {sorted(unknown)}")
        self._batch, self._routes = tuple(batch), {}
        try:
            yield
        finally:
            self._batch, self._routes = None, {}

    def _restack(self, module: str) -> None:
        old = self._stacks.pop(module, None)
        if old is not None:
            old.hook.remove()
        keys = tuple(k for k, w in self._adapters.items() if module in w)
        if not keys:
            return
        pairs = [self._adapters[k][module] for k in keys]
        rank = max(p.a.shape[1] for p in pairs)
        first = pairs[0].a
        a = first.new_zeros(len(pairs), first.shape[0], rank)
        b = first.new_zeros(len(pairs), rank, pairs[0].b.shape[1])
        for i, (key, pair) in enumerate(zip(keys, pairs, strict=True)):
            r = pair.a.shape[1]
            a[i, :, :r], b[i, :r, :] = pair.a, pair.b
            # Keep only views into the stack, so the previous stack's memory is freed.
            self._adapters[key][module] = LoraPair(a=a[i, :, :r], b=b[i, :r, :])
        layer = self.model.get_submodule(module)
        hook = layer.register_forward_hook(self._hook_for(module))
        self._stacks[module] = _Stack(keys=keys, a=a, b=b, hook=hook)

    def _hook_for(self, module: str) -> Any:
        def add_lora(layer: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> Any:
            if self._batch is None:
                return None  # outside `routed`: the plain base
            stack = self._stacks[module]
            route = self._route(stack.keys)
            if route is None:
                return None  # no row of this batch uses an adapter on this layer
            x = args[0]
            if x.shape[0] != len(self._batch):
                raise ValueError(f"{module}: {x.shape[0]} rows, but {len(self._batch)} routed")
            a = stack.a if route.pick is None else stack.a.index_select(0, route.pick)
            b = stack.b if route.pick is None else stack.b.index_select(0, route.pick)
            used, tokens = a.shape[0], x.shape[1:-1].numel()
            grouped = x.index_select(0, route.gather).reshape(used, route.per * tokens, -1)
            delta = torch.bmm(torch.bmm(grouped, a), b).reshape(used * route.per, *out.shape[1:])
            if route.valid is not None:
                delta = delta.index_select(0, route.valid)
            # In place: the layer's output is a fresh tensor, and a prefill's is large.
            return out.index_add_(0, route.rows, delta)

        return add_lora

    def _route(self, keys: tuple[str, ...]) -> _Route | None:
        """The route for a layer stacking `keys`, built once per forward pass and reused."""
        if keys in self._routes:
            return self._routes[keys]
        assert self._batch is not None
        position = {k: i for i, k in enumerate(keys)}
        groups: dict[int, list[int]] = {}
        for row, key in enumerate(self._batch):
            if key is not None and key in position:
                groups.setdefault(position[key], []).append(row)
        route = None
        if groups:
            device = self._stacks_device()
            order = sorted(groups)
            per = max(len(rows) for rows in groups.values())
            gather: list[int] = []
            valid: list[int] = []
            rows: list[int] = []
            for g, index in enumerate(order):
                members = groups[index]
                gather += members + [members[0]] * (per - len(members))
                valid += range(g * per, g * per + len(members))
                rows += members
            route = _Route(
                pick=None if order == list(range(len(keys))) else _long(order, device),
                gather=_long(gather, device),
                valid=None if len(valid) == len(gather) else _long(valid, device),
                rows=_long(rows, device),
                per=per,
            )
        self._routes[keys] = route
        return route

    def _stacks_device(self) -> torch.device:
        return next(iter(self._stacks.values())).a.device


def _long(values: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long, device=device)
