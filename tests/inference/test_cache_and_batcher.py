"""The byte-bounded LRU cache and the micro-batcher, with stand-in models (no torch)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from worker.inference.batcher import MicroBatcher
from worker.inference.cache import ModelCache


class Fake:
    def __init__(self, name: str, size: int) -> None:
        self.name, self.size, self.closed = name, size, False

    def close(self) -> None:
        self.closed = True


def test_cache_evicts_least_recently_used_by_bytes() -> None:
    cache: ModelCache[Fake] = ModelCache(100, lambda v: v.size)
    a = cache.get("a", lambda: Fake("a", 40))
    cache.get("b", lambda: Fake("b", 40))
    assert cache.get("a", lambda: Fake("a2", 40)) is a  # a hit, and now most recent
    cache.get("c", lambda: Fake("c", 40))  # 120 > 100: b (least recent) goes
    assert cache.keys() == ["a", "c"] and cache.total_bytes == 80
    big = cache.get("big", lambda: Fake("big", 500))  # alone over the bound, still served
    assert cache.keys() == ["big"] and not big.closed and a.closed
    assert cache.evictions == 3


def test_concurrent_callers_wait_for_one_load_and_failures_are_not_cached() -> None:
    cache: ModelCache[Fake] = ModelCache(1000, lambda v: v.size)
    calls = []
    gate = threading.Event()

    def slow() -> Fake:
        calls.append(1)
        gate.wait(5)
        return Fake("m", 10)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get, "m", slow) for _ in range(8)]
        time.sleep(0.2)
        gate.set()
        values = {id(f.result()) for f in futures}
    assert len(calls) == 1 and len(values) == 1

    def broken() -> Fake:
        raise OSError("store down")

    with pytest.raises(OSError):
        cache.get("x", broken)
    assert cache.get("x", lambda: Fake("x", 1)).name == "x"


def test_concurrent_requests_share_forward_passes_sorted_by_length() -> None:
    passes: list[list[str]] = []

    def run(texts: list[str]) -> list[str]:
        passes.append(texts)
        time.sleep(0.02)  # a forward pass takes time: requests pile up behind it
        return [t.upper() for t in texts]

    batcher = MicroBatcher(run, max_batch_size=16, max_wait_ms=50)
    texts = [("x" * (i % 7 + 1)) + str(i) for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda t: batcher.submit([t]), texts))
    assert answers == [[t.upper()] for t in texts]
    assert batcher.stats.requests == 32 and sum(len(p) for p in passes) == 32
    assert batcher.stats.forward_passes < 32 and max(map(len, passes)) <= 16
    assert all(p == sorted(p, key=len) for p in passes)
    # One request with more inputs than a batch is split over passes and reassembled.
    many = [str(i) for i in range(40)]
    assert batcher.submit(many) == many
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit(["late"])


def test_a_failed_pass_fails_only_its_requests() -> None:
    def run(texts: list[str]) -> list[str]:
        if "boom" in texts:
            raise ValueError("bad input")
        return texts

    batcher = MicroBatcher(run, max_batch_size=4, max_wait_ms=0)
    with pytest.raises(ValueError):
        batcher.submit(["boom"])
    assert batcher.submit(["fine"]) == ["fine"]
    batcher.close()
