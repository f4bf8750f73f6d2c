"""The keeper of adapters: which LoRA adapters sit on the resident base model.

Adapters are stacked per layer beside the unmodified base (`lora_stack`), so
rows of different adapters run in one forward pass. Residency is
least-recently-used, bounded by an adapter count and by bytes of adapter
weights; an adapter that a running request uses is pinned and never evicted
under it. Only the engine's loop thread loads, pins and evicts (the stacks must
not change during a forward pass); `snapshot()` may be read from any thread,
e.g. by the worker's heartbeat so the API can route requests to a worker that
holds their adapter.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from worker.inference.generation.lora_stack import (
    LoraStack,
    UnsupportedAdapter,
    lora_bytes,
    read_lora,
)
from worker.inference.generation.requests import Rejection

BASE = "__base__"  # the slot of rows that run on the plain base

Locate = Callable[[str], Path | None]


@dataclass(frozen=True)
class AdapterSnapshot:
    resident: tuple[str, ...]  # least recently used first
    resident_bytes: int
    max_bytes: int
    max_adapters: int
    loads: int
    evictions: int


@dataclass
class _Resident:
    nbytes: int
    pins: int = 0


class AdapterKeeper:
    def __init__(
        self, base_model: torch.nn.Module, *, locate: Locate, max_adapters: int, max_bytes: int
    ) -> None:
        if max_adapters < 1 or max_bytes < 1:
            raise ValueError("max_adapters and max_bytes must be at least 1")
        self.model: Any = base_model.eval()
        self.stack = LoraStack(self.model)
        self._locate = locate
        self.max_adapters, self.max_bytes = max_adapters, max_bytes
        self._resident: OrderedDict[str, _Resident] = OrderedDict()
        self._lock = threading.Lock()  # guards what snapshot() reads
        self.loads = self.evictions = 0

    def knows(self, name: str) -> bool:
        return name in self._resident or self._locate(name) is not None

    def acquire(self, name: str | None) -> str | Rejection | None:
        """Pin `name` (loading it if needed) and return its slot for `routed`.

        None means every slot is pinned by running requests: try again after some finish.
        """
        if name is None:
            return BASE
        entry = self._resident.get(name)
        if entry is None:
            loaded = self._load(name)
            if not isinstance(loaded, _Resident):
                return loaded
            entry = loaded
        with self._lock:
            self._resident.move_to_end(name)
            entry.pins += 1
        return name

    def release(self, name: str | None) -> None:
        if name is not None and name in self._resident:
            self._resident[name].pins -= 1

    def routed(self, slots: list[str]) -> AbstractContextManager[None]:
        """Within: row i of the model's forward passes runs with the adapter of slots[i]."""
        return self.stack.routed([None if s == BASE else s for s in slots])

    def snapshot(self) -> AdapterSnapshot:
        with self._lock:
            return AdapterSnapshot(
                resident=tuple(self._resident),
                resident_bytes=sum(e.nbytes for e in self._resident.values()),
                max_bytes=self.max_bytes,
                max_adapters=self.max_adapters,
                loads=self.loads,
                evictions=self.evictions,
            )

    def _load(self, name: str) -> _Resident | Rejection | None:
        path = self._locate(name)
        if path is None:
            return Rejection("adapter_not_found", f"no adapter named {name!r}")
        try:
            weights = read_lora(path, self.model)
        except UnsupportedAdapter as exc:
            return Rejection("adapter_unsupported", f"adapter {name!r}: {exc}")
        except Exception as exc:  # a broken upload must fail its requests, not the engine
            return Rejection("adapter_unloadable", f"adapter {name!r} could not be loaded: {exc}")
        nbytes = lora_bytes(weights)  # in the base's dtype, which is what residency costs
        if nbytes > self.max_bytes:
            return Rejection(
                "adapter_too_large",
                f"adapter {name!r} needs {nbytes} bytes, more than the {self.max_bytes} allowed",
            )
        if not self._make_room(nbytes):
            return None
        self.stack.add(name, weights)
        entry = _Resident(nbytes=nbytes)
        with self._lock:
            self._resident[name] = entry
            self.loads += 1
        return entry

    def _make_room(self, nbytes: int) -> bool:
        """Evict unpinned adapters, least recently used first, until `nbytes` more fit."""
        while len(self._resident) >= self.max_adapters or (
            sum(e.nbytes for e in self._resident.values()) + nbytes > self.max_bytes
        ):
            victim = next((n for n, e in self._resident.items() if e.pins == 0), None)
            if victim is None:
                return False
            with self._lock:
                self._resident.pop(victim)
                self.evictions += 1
            self.stack.remove(victim)
        return True
