"""The pool as the planner sees it during one pass: free GPU indices per worker now,
and when each slot is expected to free up, for placing jobs and estimating starts."""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence

from scheduler.plan_data import RunningJob, WorkerCapacity


class SlotPool:
    """Per worker: free GPU indices now, and when each slot is expected to be free.

    ``times[w]`` holds one entry per slot, sorted: the time that slot frees up
    (``now`` or earlier when it is free). "k slots free at t" is then simply
    ``times[w][k - 1] <= t``, which keeps an estimate for every waiting job cheap.
    """

    def __init__(
        self, workers: Sequence[WorkerCapacity], running: Sequence[RunningJob], now: float
    ) -> None:
        self.now = now
        self.workers = {w.name: w for w in workers}
        # A job placed on a worker starts training this long after its slots free up.
        self.startup = {w.name: w.startup_s for w in workers}
        self.indices: dict[str, list[int]] = {w.name: list(w.indices()) for w in workers}
        busy: dict[str, list[float]] = {w.name: [] for w in workers}
        for job in running:
            if job.worker not in self.indices:
                continue
            free = self.indices[job.worker]
            for index in job.gpu_indices:
                if index in free:
                    free.remove(index)
            # Jobs without known indices still hold their count of slots.
            for _ in range(job.slots - len(job.gpu_indices)):
                if free:
                    free.pop()
            busy[job.worker].extend([max(job.estimated_end, now + 1.0)] * job.slots)
        self.times: dict[str, list[float]] = {}
        for w in workers:
            taken = busy[w.name][: w.slots]
            self.times[w.name] = sorted([now] * (w.slots - len(taken)) + taken)
        self.largest = max((w.slots for w in workers), default=0)
        self._max_free: int | None = None
        # For each job size k, a heap of (time the worker has k slots free, worker): each
        # waiting job's estimate then costs a heap lookup, not a scan of the pool. Bookings
        # mostly move times later, so the heaps are refreshed lazily: an entry may hold an
        # earlier time than its worker's (a lower bound), and only the entry on top is
        # checked and, if stale, refreshed (see ``_exact_top``).
        self._by_size: dict[int, list[tuple[float, str]]] = {}

    def free_now(self, worker: str) -> int:
        return len(self.indices[worker])

    def max_free(self) -> int:
        if self._max_free is None:
            self._max_free = max((len(f) for f in self.indices.values()), default=0)
        return self._max_free

    def best_fit(self, slots: int, avoid: str | None = None) -> str | None:
        best: tuple[int, str] | None = None
        for name, free in self.indices.items():
            if name == avoid:
                continue
            if len(free) >= slots and (best is None or (len(free), name) < best):
                best = (len(free), name)
        return best[1] if best else None

    def take(self, worker: str, slots: int, end: float) -> tuple[int, ...]:
        free = sorted(self.indices[worker])
        taken, self.indices[worker] = tuple(free[:slots]), free[slots:]
        self._max_free = None
        self.book(worker, slots, end)
        return taken

    def book(self, worker: str, slots: int, end: float) -> None:
        """The earliest-free ``slots`` slots are busy until ``end``."""
        times = self.times[worker]
        moved_earlier = end < times[slots - 1]
        old = times[:] if moved_earlier else times
        del times[:slots]
        times.extend([end] * slots)
        times.sort()
        if not moved_earlier:
            # Every k-th free time stayed or moved later: the heap entries are lower bounds.
            return
        for k, heap in self._by_size.items():
            # A time that moved earlier breaks the lower bound: push the new one.
            if len(times) >= k and times[k - 1] < old[k - 1]:
                heapq.heappush(heap, (times[k - 1], worker))

    def free_at(self, worker: str, at: float) -> int:
        return bisect.bisect_right(self.times[worker], at)

    def earliest(self, slots: int) -> tuple[float, str] | None:
        """When some worker first has ``slots`` free, given expected finish times."""
        top = self._exact_top(slots)
        if top is None:
            return None
        at, name = top
        return (at if at > self.now else self.now), name

    def book_earliest(self, slots: int, runtime: float) -> float | None:
        """Book a job on the worker that first has ``slots`` free; when it starts there
        (its slots free, plus the time that worker takes to start a job).

        Booking it makes the jobs behind it in the order estimated after it. (One call per
        waiting job: hence ``earliest`` and, for the usual later end, ``book`` inlined.)
        """
        top = self._exact_top(slots)
        if top is None:
            return None
        at, name = top
        start = (at if at > self.now else self.now) + self.startup[name]
        end = start + runtime
        times = self.times[name]
        if end < times[slots - 1]:
            self.book(name, slots, end)  # (a negative runtime: times move earlier)
        else:
            del times[:slots]
            times.extend([end] * slots)
            times.sort()
        return start

    def _exact_top(self, slots: int) -> tuple[float, str] | None:
        """The heap entry of the worker that first has ``slots`` free, made exact."""
        heap = self._by_size.get(slots)
        if heap is None:
            heap = self._by_size[slots] = [
                (times[slots - 1], name)
                for name, times in self.times.items()
                if len(times) >= slots
            ]
            heapq.heapify(heap)
        if not heap:
            return None
        times, refresh = self.times, heapq.heapreplace
        # Every other entry is at most its worker's time, so a top entry that is exact is
        # the earliest (ties by worker name, as the entries compare).
        while True:
            top = heap[0]
            exact = times[top[1]][slots - 1]
            if exact == top[0] or exact != exact:  # (a NaN time must not loop forever)
                return top
            refresh(heap, (exact, top[1]))
