"""Keep the model's parallel torch work on one live thread.

Every thread that runs parallel torch ops keeps an OpenMP thread pool for as long
as it lives. When the live pools hold more threads than there are CPUs, libgomp
cuts its spin-waits short, and every small op (a LoRA matmul, an index_add) then
pays a thread wake-up: on 2 cores the engine's decode steps ran about 2x slower
beside one idle pool left by the thread that loaded the model. So loading and
copying models runs on a thread that ends with the work, and the engine's loop
thread is the one pool left.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def on_own_thread(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on a fresh thread that ends with it (its exceptions re-raised here)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch-setup") as pool:
        return pool.submit(work, *args).result()
