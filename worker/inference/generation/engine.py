"""The scheduler of requests: continuous batching over one resident base and its adapters.

One loop thread owns the model. Each step it drops cancelled rows, admits waiting
requests whose adapter is (or can be made) resident, prefills them in one pass,
then decodes one token for every running row in one pass (adapters mixed per
row), and retires rows that finished. So requests join and leave the batch
between decode steps, not at batch boundaries. Submitting is thread-safe and
answers at once: a handle to read events from, or a `Rejection` (queue full,
context too long, unknown adapter) that the API maps to a 4xx/503.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from worker.inference.generation.adapters import AdapterKeeper, AdapterSnapshot
from worker.inference.generation.batch import RunningBatch, check_full_attention
from worker.inference.generation.requests import (
    Completion,
    EngineLimits,
    FinishReason,
    GenerationRequest,
    Rejection,
    TokenChunk,
    Usage,
)
from worker.inference.generation.sampling import Sampler, next_tokens
from worker.inference.generation.sequence import Sequence, stop_token_ids
from worker.inference.generation.stream import Channel, RequestHandle
from worker.inference.generation.text import TextAssembler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineStats:
    waiting: int
    running: int
    prompt_tokens: int
    generated_tokens: int
    decode_steps: int
    adapters: AdapterSnapshot


class GenerationEngine:
    def __init__(
        self,
        keeper: AdapterKeeper,
        tokenizer: Any,
        limits: EngineLimits | None = None,
        *,
        start: bool = True,
    ) -> None:
        config = keeper.model.config
        check_full_attention(config)
        self.limits = limits or EngineLimits()
        self.max_context = min(
            self.limits.max_context_tokens,
            getattr(config, "max_position_embeddings", None) or self.limits.max_context_tokens,
        )
        self._keeper, self._tokenizer = keeper, tokenizer
        self._vocab_size = int(keeper.model.get_input_embeddings().num_embeddings)
        stops = self.limits.stop_token_ids
        self._stop_ids = stop_token_ids(keeper.model, tokenizer) if stops is None else stops
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []  # row i of the batch is _running[i]
        self._device = next(keeper.model.parameters()).device
        self._batch = RunningBatch(self._device)
        self._wake = threading.Condition()
        self._closed = False
        self._ids = (f"gen-{i}" for i in itertools.count())
        self.prompt_tokens = self.generated_tokens = self.decode_steps = 0
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._loop, name="generation", daemon=True)
            self._thread.start()

    # -- the caller's side ------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> RequestHandle | Rejection:
        refused = self._check(request)
        if refused is not None:
            return refused
        channel = Channel()
        request_id = request.request_id or next(self._ids)
        seq = Sequence(
            request=request,
            channel=channel,
            sampler=Sampler(request.temperature, request.top_p, request.seed),
            text=TextAssembler(self._tokenizer, request.prompt_ids, request.stop),
            submitted_at=time.monotonic(),
        )
        with self._wake:
            if self._closed:
                return Rejection("unavailable", "the engine is shutting down", retry_after_s=1.0)
            if len(self._waiting) >= self.limits.max_waiting:
                return Rejection(
                    "queue_full",
                    f"{len(self._waiting)} requests are already waiting; retry later",
                    retry_after_s=self.limits.retry_after_s,
                )
            self._waiting.append(seq)
            self._wake.notify()
        return RequestHandle(request_id, channel)

    def stats(self) -> EngineStats:
        with self._wake:
            waiting, running = len(self._waiting), len(self._running)
        return EngineStats(
            waiting=waiting,
            running=running,
            prompt_tokens=self.prompt_tokens,
            generated_tokens=self.generated_tokens,
            decode_steps=self.decode_steps,
            adapters=self._keeper.snapshot(),
        )

    def close(self) -> None:
        """Stop the loop; requests still waiting or running end with an error."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
        self._fail_all("the engine shut down")

    # -- the loop's side --------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> None:
        """One round: drop cancelled rows, admit and prefill, decode one token per row."""
        self._drop_cancelled()
        admitted = self._admit()
        if admitted:
            start = len(self._running)
            self._running.extend(admitted)
            with self._keeper.routed([s.slot for s in admitted]):
                logits = self._batch.prefill(
                    self._keeper.model, [s.request.prompt_ids for s in admitted]
                )
            self.prompt_tokens += sum(len(s.request.prompt_ids) for s in admitted)
            self._advance(range(start, len(self._running)), logits)
            self._retire()
        if self._running:
            with self._keeper.routed([s.slot for s in self._running]):
                logits = self._batch.decode(
                    self._keeper.model, [s.token_ids[-1] for s in self._running]
                )
            self.decode_steps += 1
            self._advance(range(len(self._running)), logits)
            self._retire()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._waiting and not self._running:
                    self._wake.wait()
                if self._closed:
                    return
            try:
                self.step()
            except Exception as exc:  # a failed step must not strand its requests
                log.exception("generation step failed")
                self._fail_all(f"generation failed: {exc}")

    def _check(self, request: GenerationRequest) -> Rejection | None:
        prompt, new = len(request.prompt_ids), request.max_new_tokens
        if prompt == 0:
            return Rejection("invalid_request", "the prompt is empty")
        if new < 1:
            return Rejection("invalid_request", "max_tokens must be at least 1")
        if not all(0 <= t < self._vocab_size for t in request.prompt_ids):
            # Checked here: an out-of-range id would fail the whole batch's forward pass.
            limit = self._vocab_size
            return Rejection("invalid_request", f"prompt token ids must be in [0, {limit})")
        if request.temperature < 0 or not 0 < request.top_p <= 1:
            return Rejection("invalid_request", "temperature must be >= 0 and top_p in (0, 1]")
        if prompt + new > self.max_context:
            return Rejection(
                "context_length_exceeded",
                f"This model's maximum context length is {self.max_context} tokens. However, you "
                f"requested {prompt + new} tokens ({prompt} in the prompt, {new} for the "
                "completion). Please reduce the prompt or max_tokens.",
            )
        if request.adapter is not None and not self._keeper.knows(request.adapter):
            return Rejection("adapter_not_found", f"no adapter named {request.adapter!r}")
        return None

    def _admit(self) -> list[Sequence]:
        room = self.limits.max_batch_size - len(self._running)
        budget = self.limits.max_prefill_tokens
        admitted: list[Sequence] = []
        with self._wake:
            candidates = list(self._waiting)
        for seq in candidates:
            cost = len(seq.request.prompt_ids)
            if room == 0 or (admitted and cost > budget):
                break
            slot = self._keeper.acquire(seq.request.adapter)
            if slot is None:
                continue  # every adapter slot is pinned: wait; later requests may still fit
            with self._wake:
                self._waiting.remove(seq)
            if isinstance(slot, Rejection):
                self._finish(seq, FinishReason.ERROR, error=slot.message)
                continue
            seq.slot = slot
            admitted.append(seq)
            room, budget = room - 1, budget - cost
        return admitted

    def _advance(self, rows: range, logits: torch.Tensor) -> None:
        seqs = [self._running[r] for r in rows]
        tokens = next_tokens(logits, [s.sampler for s in seqs])
        now = time.monotonic()
        for seq, token in zip(seqs, tokens, strict=True):
            text = seq.accept(token, now)
            self.generated_tokens += 1
            seq.channel.events.put(TokenChunk(token_id=token, text=text))
            if token in self._stop_ids or seq.text.stopped:
                seq.finish_reason = FinishReason.STOP
            elif len(seq.token_ids) >= seq.request.max_new_tokens:
                seq.finish_reason = FinishReason.LENGTH

    def _drop_cancelled(self) -> None:
        with self._wake:
            gone = [s for s in self._waiting if s.channel.cancelled.is_set()]
            for seq in gone:
                self._waiting.remove(seq)
        for seq in gone:
            self._finish(seq, FinishReason.CANCELLED)
        for seq in self._running:
            if seq.channel.cancelled.is_set():
                seq.finish_reason = FinishReason.CANCELLED
        self._retire()

    def _retire(self) -> None:
        """Take finished rows out of the batch, keeping the others' order."""
        keep = [i for i, s in enumerate(self._running) if s.finish_reason is None]
        if len(keep) == len(self._running):
            return
        for seq in self._running:
            if seq.finish_reason is not None:
                self._keeper.release(seq.request.adapter)
                self._finish(seq, seq.finish_reason)
        self._batch.keep(keep)
        self._running = [self._running[i] for i in keep]

    def _finish(self, seq: Sequence, reason: FinishReason, error: str | None = None) -> None:
        tail = seq.text.finish()
        if tail:
            seq.channel.events.put(TokenChunk(token_id=None, text=tail))
        seq.channel.events.put(
            Completion(
                finish_reason=reason,
                text=seq.text.text,
                token_ids=tuple(seq.token_ids),
                usage=Usage(len(seq.request.prompt_ids), len(seq.token_ids)),
                time_to_first_token_s=seq.time_to_first_token_s,
                error=error,
            )
        )

    def _fail_all(self, message: str) -> None:
        with self._wake:
            waiting, self._waiting = list(self._waiting), deque()
        for seq in [*waiting, *self._running]:
            if seq in self._running:
                self._keeper.release(seq.request.adapter)
            self._finish(seq, FinishReason.ERROR, error=message)
        self._running, self._batch = [], RunningBatch(self._device)
