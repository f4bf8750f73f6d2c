"""What an inference worker needs from a generation backend, whichever runs the batches.

`GenerationEngine` (stacked LoRA adapters over one base, CPU or one GPU) satisfies it. A
vLLM backend fits the same shape where vLLM is installed: an `AsyncLLMEngine`
built with `enable_lora=True, max_loras=..., max_lora_rank=...`, each request
carrying `LoRARequest(name, int_id, path)` for its adapter; vLLM then keeps its
own resident-adapter LRU, and `snapshot()` reports the adapters of the
`LoRARequest`s it was handed most recently. It is not written here because vLLM
is not installed on these machines and untested code would rot.
"""

from __future__ import annotations

from typing import Protocol

from worker.inference.generation.adapters import AdapterSnapshot
from worker.inference.generation.engine import EngineStats
from worker.inference.generation.requests import GenerationRequest, Rejection
from worker.inference.generation.stream import RequestHandle


class GenerationBackend(Protocol):
    def submit(self, request: GenerationRequest) -> RequestHandle | Rejection:
        """Queue a request at once, or say why not (never blocks on the model)."""
        ...

    def stats(self) -> EngineStats:
        """Queue depth, running rows, token counts, and the resident adapters for heartbeats."""
        ...

    def close(self) -> None: ...


def resident_adapters(backend: GenerationBackend) -> AdapterSnapshot:
    """What a heartbeat reports, so the API routes requests to a worker holding their adapter."""
    return backend.stats().adapters
