"""Micro-batching: concurrent requests for one model share forward passes (no torch here).

Each request hands in its inputs and blocks. A single thread per model takes the
first waiting request, gathers more until ``max_batch_size`` inputs are collected
or ``max_wait_ms`` have passed since the first arrived, sorts the gathered inputs
by length, and runs them through ``run`` in passes of at most ``max_batch_size``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

# Inputs are texts or word lists (worker.inference.inputs); the batcher only measures them.
Run = Callable[[list[Any]], list[Any]]


@dataclass
class BatcherStats:
    requests: int = 0
    inputs: int = 0
    forward_passes: int = 0
    batch_sizes: list[int] = field(default_factory=list)


@dataclass
class _Request:
    inputs: list[Any]
    future: Future[list[Any]]


class MicroBatcher:
    def __init__(
        self,
        run: Run,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 10.0,
        length: Callable[[Any], int] = len,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be at least 1 and max_wait_ms at least 0")
        self._run, self._length = run, length
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_ms / 1000
        self.stats = BatcherStats()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, inputs: Sequence[Any], timeout_s: float | None = None) -> list[Any]:
        """Predictions for ``inputs`` in order; blocks until their batch has run."""
        if self._closed:
            raise RuntimeError("the model was unloaded; retry")
        if not inputs:
            return []
        request = _Request(list(inputs), Future())
        self._queue.put(request)
        return request.future.result(timeout_s)

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)

    def _gather(self, first: _Request) -> list[_Request]:
        batch, count = [first], len(first.inputs)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch_size:
            left = deadline - time.monotonic()
            try:
                request = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)  # seen again by the loop, which then stops
                break
            batch.append(request)
            count += len(request.inputs)
        return batch

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            self._serve(self._gather(first))
        # Anyone still waiting learns the model went away instead of hanging.
        while True:
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None:
                left.future.set_exception(RuntimeError("the model was unloaded; retry"))

    def _serve(self, requests: list[_Request]) -> None:
        items = [(r, i, text) for r in requests for i, text in enumerate(r.inputs)]
        items.sort(key=lambda item: self._length(item[2]))
        outputs: dict[int, list[Any]] = {id(r): [None] * len(r.inputs) for r in requests}
        failed: dict[int, BaseException] = {}
        for begin in range(0, len(items), self.max_batch_size):
            chunk = items[begin : begin + self.max_batch_size]
            try:
                results = self._run([text for _, _, text in chunk])
                self.stats.forward_passes += 1
                self.stats.batch_sizes.append(len(chunk))
            except Exception as exc:  # reported to the requests in this pass only
                for r, _, _ in chunk:
                    failed[id(r)] = exc
                continue
            for (r, i, _), result in zip(chunk, results, strict=True):
                outputs[id(r)][i] = result
        for r in requests:
            self.stats.requests += 1
            self.stats.inputs += len(r.inputs)
            if id(r) in failed:
                r.future.set_exception(failed[id(r)])
            else:
                r.future.set_result(outputs[id(r)])
