"""A tiny random Llama, four random LoRA adapters, and engines over them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.inference.generation.tiny_llama import lora_adapter_dir, tiny_llama_dir

ADAPTERS = ("ft:alpha", "ft:beta", "ft:gamma", "support-bot@1.2")


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama_dir(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def adapter_dirs(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    targets = [("q_proj", "v_proj"), ("q_proj", "k_proj", "v_proj", "o_proj"), ("v_proj",)]
    return {
        name: lora_adapter_dir(llama_dir, root / f"a{i}", seed=i + 1, targets=targets[i % 3])
        for i, name in enumerate(ADAPTERS)
    }


@pytest.fixture(scope="session")
def tokenizer(llama_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(llama_dir)


@pytest.fixture
def make_engine(llama_dir: Path, adapter_dirs: dict[str, Path], tokenizer: Any) -> Iterator[Any]:
    """Engines over a fresh base model; closed after the test."""
    from transformers import AutoModelForCausalLM

    from worker.inference.generation.adapters import AdapterKeeper
    from worker.inference.generation.engine import GenerationEngine
    from worker.inference.generation.requests import EngineLimits

    engines: list[GenerationEngine] = []

    def make(
        *,
        start: bool = False,
        max_adapters: int = 8,
        max_bytes: int = 10**9,
        more_adapters: dict[str, Path] | None = None,
        **limits: Any,
    ) -> GenerationEngine:
        keeper = AdapterKeeper(
            AutoModelForCausalLM.from_pretrained(llama_dir),
            locate={**adapter_dirs, **(more_adapters or {})}.get,
            max_adapters=max_adapters,
            max_bytes=max_bytes,
        )
        engine = GenerationEngine(keeper, tokenizer, EngineLimits(**limits), start=start)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture(scope="session")
def generate_alone(llama_dir: Path, adapter_dirs: dict[str, Path]) -> Any:
    """Greedy tokens from plain `generate` on a model holding only that adapter, merged."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    models: dict[str | None, Any] = {}

    def model_for(adapter: str | None) -> Any:
        if adapter not in models:
            model = AutoModelForCausalLM.from_pretrained(llama_dir)
            if adapter is not None:
                model = PeftModel.from_pretrained(model, adapter_dirs[adapter]).merge_and_unload()
            models[adapter] = model.eval()
        return models[adapter]

    def run(prompt: tuple[int, ...], adapter: str | None, max_new_tokens: int) -> list[int]:
        out = model_for(adapter).generate(
            torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False
        )
        return [int(t) for t in out[0, len(prompt) :]]

    return run
