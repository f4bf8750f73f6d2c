"""The keeper of adapters: which LoRA adapters sit on the resident base model.

All adapters live in one `PeftModel` under internal slot names, so rows of
different adapters run in one forward pass (`adapter_names=[...]`). Residency is
least-recently-used, bounded by a slot count and by bytes of adapter weights;
an adapter that a running request uses is pinned and never evicted under it.
Only the engine's loop thread loads, pins and evicts (the model must not change
during a forward pass); `snapshot()` may be read from any thread, e.g. by the
worker's heartbeat so the API can route requests to a worker that holds their
adapter.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from worker.inference.generation.requests import Rejection

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed-adapter batch
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")

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
    slot: str
    nbytes: int
    pins: int = 0


class AdapterKeeper:
    def __init__(
        self, base_model: torch.nn.Module, *, locate: Locate, max_adapters: int, max_bytes: int
    ) -> None:
        if max_adapters < 1 or max_bytes < 1:
            raise ValueError("max_adapters and max_bytes must be at least 1")
        self.model: Any = base_model.eval()
        self._locate = locate
        self.max_adapters, self.max_bytes = max_adapters, max_bytes
        self._resident: OrderedDict[str, _Resident] = OrderedDict()
        self._slots = (f"slot{i}" for i in itertools.count())
        self._lock = threading.Lock()  # guards what snapshot() reads
        self.loads = self.evictions = 0

    def knows(self, name: str) -> bool:
        return name in self._resident or self._locate(name) is not None

    def acquire(self, name: str | None) -> str | Rejection | None:
        """Pin `name` (loading it if needed) and return its name in mixed batches.

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
        return entry.slot

    def release(self, name: str | None) -> None:
        if name is not None and name in self._resident:
            self._resident[name].pins -= 1

    def batch_names(self, slots: list[str]) -> dict[str, Any]:
        """Forward keywords that route each row to its adapter."""
        return {"adapter_names": slots} if self._is_peft() else {}

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
        refused = _unsupported(path)
        if refused is not None:
            return Rejection("adapter_unsupported", f"adapter {name!r}: {refused}")
        estimate = sum(f.stat().st_size for f in map(path.joinpath, _WEIGHT_FILES) if f.is_file())
        if estimate > self.max_bytes:
            return Rejection(
                "adapter_too_large",
                f"adapter {name!r} needs {estimate} bytes, more than the {self.max_bytes} allowed",
            )
        if not self._make_room(estimate):
            return None
        slot = next(self._slots)
        try:
            self._inject(path, slot)
        except Exception as exc:  # a broken upload must fail its requests, not the engine
            if self._is_peft() and slot in self.model.peft_config:
                self.model.delete_adapter(slot)
                self._repoint_active()
            return Rejection("adapter_unloadable", f"adapter {name!r} could not be loaded: {exc}")
        entry = _Resident(slot=slot, nbytes=_adapter_bytes(self.model, slot))
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
                entry = self._resident.pop(victim)
                self.evictions += 1
            self.model.delete_adapter(entry.slot)
            self._repoint_active()
        return True

    def _inject(self, path: Path, slot: str) -> None:
        from peft import PeftModel
        from peft.utils import load_peft_weights

        # Read the weights once before touching the model: a broken file then fails
        # here, not halfway through PEFT wrapping the base in place.
        load_peft_weights(str(path), device="cpu")
        if self._is_peft():
            self.model.load_adapter(str(path), adapter_name=slot, is_trainable=False)
        else:  # the first adapter turns the base into the one PeftModel that holds them all
            self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=slot)
        self.model.eval()

    def _repoint_active(self) -> None:
        """After a deletion: PEFT leaves PeftModel's active adapter naming the deleted one,
        and every forward looks it up. Point it at a resident adapter, or go back to the
        plain base when none is left (the next load wraps it again)."""
        if self._resident:
            survivor = next(iter(self._resident.values())).slot
            self.model.set_adapter(survivor, inference_mode=True)
        else:
            self.model = self.model.unload()

    def _is_peft(self) -> bool:
        from peft import PeftModel

        return isinstance(self.model, PeftModel)


def _unsupported(path: Path) -> str | None:
    """Why PEFT's mixed-adapter batches cannot serve this adapter, if they cannot."""
    from peft import LoraConfig, PeftConfig

    try:
        config = PeftConfig.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        return f"unreadable adapter config ({exc})"
    if not isinstance(config, LoraConfig):
        return f"only LoRA adapters are served, not {config.peft_type}"
    if config.use_dora:
        return "DoRA adapters cannot share a mixed-adapter batch"
    return None


def _adapter_bytes(model: torch.nn.Module, slot: str) -> int:
    marker = f".{slot}."
    return sum(
        p.numel() * p.element_size() for n, p in model.named_parameters() if marker in f"{n}."
    )
