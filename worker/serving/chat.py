"""Chat serving on a serving worker: one resident generation engine per base model, each
with many LoRA adapters (DESIGN §7; the engine is ``worker.inference.generation``).

A request names its base model (an allow-list name, resolved with this worker's own
settings) and, for a fine-tuned model, its adapter: the registry version's id and the
list of its recorded files, fetched verified from the object store on first use and
kept on local disk within a byte budget (``worker.serving.adapter_files``). The engine's
adapter keeper loads it onto the base when a request needs it (LRU by slots and bytes);
requests of every adapter of a base share its continuously batched forward passes. The
worker's advert lists each resident base (``base:<name>``) and adapter (its version
id), so the API routes by affinity.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from storage.objects.base import ObjectStore
from tunepool.serving_protocol import Failure, Refused, base_key
from tunepool.settings import Settings
from worker.inference.generation.threads import on_own_thread
from worker.serving.adapter_files import AdapterFiles

log = logging.getLogger(__name__)


class _Base:
    """A loaded base model: its engine and tokenizer."""

    def __init__(self, engine: Any, tokenizer: Any, nbytes: int) -> None:
        self.engine, self.tokenizer, self.nbytes = engine, tokenizer, nbytes


class ChatHost:
    def __init__(self, store: ObjectStore, settings: Settings, directory: Path) -> None:
        self.store, self.settings, self.directory = store, settings, directory
        shutil.rmtree(directory, ignore_errors=True)  # a killed predecessor's files
        self._bases: dict[str, _Base] = {}
        self.adapter_files = AdapterFiles(
            store, directory / "adapters", settings.serve_chat_adapter_disk_bytes
        )
        self._lock = threading.Lock()
        self._base_lock = threading.Lock()  # one base load at a time

    # -- bases ---------------------------------------------------------------------------

    def base(self, name: str) -> _Base:
        loaded = self._bases.get(name)
        if loaded is not None:
            return loaded
        with self._base_lock:
            loaded = self._bases.get(name)
            if loaded is None:
                # Off this handler thread, so the engine's loop thread keeps the only
                # OpenMP pool of the chat model's work (generation/threads.py says why).
                loaded = on_own_thread(self._load_base, name)
                with self._lock:
                    self._bases[name] = loaded
        return loaded

    def _load_base(self, name: str) -> _Base:
        source = self.settings.allowed_base_models.get(name)
        if source is None:
            raise Refused(Failure(404, "model_not_found", f"no base model {name!r} here", "model"))
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from worker.inference.generation.adapters import AdapterKeeper
        from worker.inference.generation.engine import GenerationEngine
        from worker.inference.generation.requests import EngineLimits
        from worker.training.causal_lm.base_models import resolve_causal_base

        path = resolve_causal_base(source, self.settings.scratch_dir / "causal-bases")
        config = AutoConfig.from_pretrained(path)
        if not any(a.endswith("ForCausalLM") for a in config.architectures or []):
            raise Refused(
                Failure(400, "not_a_chat_model", f"{name} is not a causal language model", "model")
            )
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        keeper = AdapterKeeper(
            model,
            locate=self.adapter_files.locate,
            max_adapters=self.settings.serve_chat_max_adapters,
            max_bytes=self.settings.serve_chat_adapter_bytes,
        )
        limits = EngineLimits(
            max_batch_size=self.settings.serve_chat_max_batch,
            max_waiting=self.settings.serve_queue_limit,
            max_context_tokens=self.settings.serve_chat_max_context,
        )
        try:
            engine = GenerationEngine(keeper, tokenizer, limits)
        except ValueError as exc:  # e.g. sliding-window attention
            raise Refused(Failure(400, "not_servable", f"{name}: {exc}", "model")) from None
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        log.info("chat base %s loaded from %s (%d bytes)", name, path, nbytes)
        return _Base(engine, tokenizer, nbytes)

    # -- what the advert shows -----------------------------------------------------------

    def held(self) -> dict[str, dict[str, int]]:
        with self._lock:
            bases = dict(self._bases)
        held: dict[str, dict[str, int]] = {}
        for name, base in bases.items():
            stats = base.engine.stats()
            held[base_key(name)] = {
                "bytes": base.nbytes,
                "running": stats.running,
                "waiting": stats.waiting,
                "generated_tokens": stats.generated_tokens,
                "adapters": len(stats.adapters.resident),
                "adapter_bytes": stats.adapters.resident_bytes,
            }
            for version_id in stats.adapters.resident:
                held[version_id] = {"adapter": 1}
        return held

    def close(self) -> None:
        with self._lock:
            bases, self._bases = list(self._bases.values()), {}
        for base in bases:
            base.engine.close()
        shutil.rmtree(self.directory, ignore_errors=True)
