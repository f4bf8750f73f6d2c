"""A caller's end of one request: its events as they come, and a way to walk away (no torch).

The engine's loop thread puts events into a `Channel`; the caller iterates them
through a `RequestHandle`, e.g. to relay tokens to a streaming HTTP response.
Cancelling, or dropping the handle without reading to the end, makes the request
leave the running batch at the next step: the engine holds only the channel, so
the handle can be garbage-collected and its finalizer cancels.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

from worker.inference.generation.requests import Completion, Event


@dataclass
class Channel:
    events: queue.SimpleQueue[Event] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class RequestHandle:
    def __init__(self, request_id: str, channel: Channel) -> None:
        self.request_id = request_id
        self._channel = channel
        weakref.finalize(self, channel.cancelled.set)

    def cancel(self) -> None:
        self._channel.cancelled.set()

    def events(self, timeout_s: float | None = None) -> Iterator[Event]:
        """Every event up to and including the final `Completion`.

        Raises `TimeoutError` when no event comes within `timeout_s`.
        """
        while True:
            try:
                event = self._channel.events.get(timeout=timeout_s)
            except queue.Empty:
                raise TimeoutError(f"no event for {self.request_id} in {timeout_s} s") from None
            yield event
            if isinstance(event, Completion):
                return

    def result(self, timeout_s: float | None = None) -> Completion:
        """Wait for the end and return it (the chunks' texts add up to its `text`)."""
        for event in self.events(timeout_s):
            if isinstance(event, Completion):
                return event
        raise AssertionError("events() always ends with a Completion")
