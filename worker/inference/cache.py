"""A least-recently-used cache of loaded models, bounded by bytes (no torch here).

Concurrent callers asking for a model that is still loading wait for that one
load instead of starting their own or failing; a failed load is not cached, so
the next caller tries again. Evicted values with a ``close()`` method are closed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class ModelCache(Generic[V]):
    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._loading: dict[str, Future[V]] = {}
        self.loads = 0
        self.evictions = 0

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._entries.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def peek(self, key: str) -> V | None:
        """The cached value, if loaded, without counting as a use."""
        with self._lock:
            entry = self._entries.get(key)
            return entry[0] if entry is not None else None

    def get(self, key: str, load: Callable[[], V]) -> V:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry[0]
            pending = self._loading.get(key)
            loader = pending is None
            if loader:
                pending = self._loading[key] = Future()
        assert pending is not None
        if not loader:
            return pending.result()  # another thread is loading it: wait for that load
        try:
            value = load()
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            raise
        evicted = self._insert(key, value)
        pending.set_result(value)
        for old in evicted:
            _close(old)
        return value

    def _insert(self, key: str, value: V) -> list[V]:
        size = self._size_of(value)
        evicted: list[V] = []
        with self._lock:
            self._entries[key] = (value, size)
            del self._loading[key]
            self.loads += 1
            total = sum(s for _, s in self._entries.values())
            # The newest entry always stays, even alone over the bound: it is in use.
            while total > self.max_bytes and len(self._entries) > 1:
                _, (old, old_size) = self._entries.popitem(last=False)
                total -= old_size
                evicted.append(old)
                self.evictions += 1
        return evicted

    def clear(self) -> None:
        with self._lock:
            values = [value for value, _ in self._entries.values()]
            self._entries.clear()
        for value in values:
            _close(value)


def _close(value: object) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        close()
