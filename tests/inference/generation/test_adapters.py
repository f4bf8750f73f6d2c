"""The keeper holds adapters least-recently-used within slots and bytes, never one in use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.inference.generation.tiny_llama import lora_adapter_dir
from worker.inference.generation.adapters import BASE, AdapterKeeper
from worker.inference.generation.requests import Rejection


def keeper(llama_dir: Path, dirs: dict[str, Path], **bounds: int) -> AdapterKeeper:
    from transformers import AutoModelForCausalLM

    bounds = {"max_adapters": 8, "max_bytes": 10**9, **bounds}
    return AdapterKeeper(AutoModelForCausalLM.from_pretrained(llama_dir), locate=dirs.get, **bounds)


def use(k: AdapterKeeper, name: str) -> str:
    slot = k.acquire(name)
    assert isinstance(slot, str), slot
    k.release(name)
    return slot


def test_the_least_recently_used_adapter_leaves_when_slots_run_out(
    llama_dir: Path, adapter_dirs: dict[str, Path]
) -> None:
    k = keeper(llama_dir, adapter_dirs, max_adapters=2)
    alpha = use(k, "ft:alpha")
    use(k, "ft:beta")
    use(k, "ft:alpha")  # alpha is now the most recently used
    use(k, "ft:gamma")
    snap = k.snapshot()
    assert snap.resident == ("ft:alpha", "ft:gamma")
    assert (snap.loads, snap.evictions) == (3, 1)
    assert use(k, "ft:alpha") == alpha  # still resident: not loaded again
    assert len(k.stack) == 2  # beta's weights really left the stacks


def test_the_byte_budget_bounds_resident_adapters(
    llama_dir: Path, adapter_dirs: dict[str, Path]
) -> None:
    probe = keeper(llama_dir, adapter_dirs)
    use(probe, "ft:alpha")
    one = probe.snapshot().resident_bytes
    assert one > 0
    # alpha (q, v) and gamma (v: 0.43 of alpha) fit together; beta (q, k, v, o: twice
    # alpha) only leaves room for itself.
    budget = int(one * 2.3)
    k = keeper(llama_dir, adapter_dirs, max_bytes=budget)
    use(k, "ft:alpha")
    use(k, "ft:gamma")
    assert k.snapshot().resident == ("ft:alpha", "ft:gamma")
    use(k, "ft:beta")
    snap = k.snapshot()
    assert snap.resident == ("ft:beta",)
    assert snap.evictions == 2 and 0 < snap.resident_bytes <= budget


def test_an_adapter_in_use_is_never_evicted(llama_dir: Path, adapter_dirs: dict[str, Path]) -> None:
    k = keeper(llama_dir, adapter_dirs, max_adapters=2)
    assert isinstance(k.acquire("ft:alpha"), str)
    assert isinstance(k.acquire("ft:beta"), str)
    assert k.acquire("ft:gamma") is None  # both slots pinned by running requests: wait
    k.release("ft:alpha")
    assert isinstance(k.acquire("ft:gamma"), str)
    assert k.snapshot().resident == ("ft:beta", "ft:gamma")


def test_the_base_needs_no_slot(llama_dir: Path, adapter_dirs: dict[str, Path]) -> None:
    k = keeper(llama_dir, adapter_dirs, max_adapters=1)
    assert k.acquire(None) == BASE
    assert k.snapshot().resident == ()


def test_unknown_too_large_and_dora_adapters_are_refused(
    llama_dir: Path, adapter_dirs: dict[str, Path], tmp_path: Path
) -> None:
    dora = lora_adapter_dir(llama_dir, tmp_path / "dora", seed=9, use_dora=True)
    k = keeper(llama_dir, {**adapter_dirs, "ft:dora": dora}, max_bytes=10**9)
    refusals = {name: k.acquire(name) for name in ("ft:nobody", "ft:dora")}
    small = keeper(llama_dir, adapter_dirs, max_bytes=100)
    refusals["too_large"] = small.acquire("ft:alpha")
    codes = {n: r.code for n, r in refusals.items() if isinstance(r, Rejection)}
    assert codes == {
        "ft:nobody": "adapter_not_found",
        "ft:dora": "adapter_unsupported",
        "too_large": "adapter_too_large",
    }
    assert k.snapshot().resident == () and small.snapshot().resident == ()


@pytest.mark.parametrize("max_adapters", [1, 2])
def test_requests_wait_for_a_slot_and_still_get_their_own_adapter(
    make_engine: Any, generate_alone: Any, max_adapters: int
) -> None:
    from tests.inference.generation.test_engine import PROMPTS, drain, submitted
    from worker.inference.generation.requests import GenerationRequest

    engine = make_engine(max_adapters=max_adapters)
    jobs = [(PROMPTS[i], name) for i, name in enumerate(["ft:alpha", "ft:beta", "ft:gamma"])]
    handles = [submitted(engine, GenerationRequest(p, a, max_new_tokens=6)) for p, a in jobs]
    engine.step()
    assert engine.stats().running == max_adapters  # the rest wait for a slot to free
    drain(engine)
    for handle, (prompt, adapter) in zip(handles, jobs, strict=True):
        assert list(handle.result(0).token_ids) == generate_alone(prompt, adapter, 6)
    assert engine.stats().adapters.evictions == 3 - max_adapters


@pytest.mark.parametrize("first", [True, False])
def test_a_broken_adapter_is_refused_and_the_others_still_serve(
    make_engine: Any,
    generate_alone: Any,
    adapter_dirs: dict[str, Path],
    tmp_path: Path,
    first: bool,
) -> None:
    import shutil

    from tests.inference.generation.test_engine import PROMPTS, drain, submitted
    from worker.inference.generation.requests import FinishReason, GenerationRequest

    broken = tmp_path / "broken"
    shutil.copytree(adapter_dirs["ft:alpha"], broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    engine = make_engine(more_adapters={"ft:broken": broken})
    if not first:
        submitted(engine, GenerationRequest(PROMPTS[0], "ft:beta", max_new_tokens=2))
        drain(engine)
    bad = submitted(engine, GenerationRequest(PROMPTS[0], "ft:broken", max_new_tokens=4))
    good = submitted(engine, GenerationRequest(PROMPTS[1], "ft:gamma", max_new_tokens=6))
    base = submitted(engine, GenerationRequest(PROMPTS[2], None, max_new_tokens=6))
    drain(engine)
    failed = bad.result(0)
    assert failed.finish_reason is FinishReason.ERROR
    assert "could not be loaded" in (failed.error or "")
    assert list(good.result(0).token_ids) == generate_alone(PROMPTS[1], "ft:gamma", 6)
    assert list(base.result(0).token_ids) == generate_alone(PROMPTS[2], None, 6)
    assert "ft:broken" not in engine.stats().adapters.resident
