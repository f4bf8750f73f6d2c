"""Continuous batching over mixed adapters gives each request what it would get alone."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from worker.inference.generation.engine import GenerationEngine
from worker.inference.generation.requests import (
    Completion,
    FinishReason,
    GenerationRequest,
    Rejection,
    TokenChunk,
)
from worker.inference.generation.stream import RequestHandle

PROMPTS = [
    (101, 2023, 2003, 1037, 3231, 6251, 2007, 2116, 2616, 1999, 2009),
    (101, 7592, 2088),
    (101, 1996, 4248, 2829, 4419, 14523),
    (101, 2054),
    (101, 2129, 2079, 2017, 2079, 2023, 2154, 1029),
]


def submitted(engine: GenerationEngine, request: GenerationRequest) -> RequestHandle:
    handle = engine.submit(request)
    assert isinstance(handle, RequestHandle), handle
    return handle


def drain(engine: GenerationEngine, max_steps: int = 500) -> None:
    for _ in range(max_steps):
        stats = engine.stats()
        if not stats.waiting and not stats.running:
            return
        engine.step()
    raise AssertionError("the engine did not finish")


def test_requests_joining_a_running_mixed_batch_get_the_tokens_they_get_alone(
    make_engine: Any, generate_alone: Any
) -> None:
    engine = make_engine(max_batch_size=8)
    plan = [  # (step at which it joins, prompt, adapter, max_new_tokens)
        (0, PROMPTS[0], "ft:alpha", 12),
        (0, PROMPTS[1], None, 9),
        (0, PROMPTS[2], "ft:beta", 14),
        (3, PROMPTS[3], "ft:gamma", 10),
        (3, PROMPTS[4], "ft:alpha", 6),
        (5, PROMPTS[2], None, 8),
        (7, PROMPTS[0], "support-bot@1.2", 11),
    ]
    handles: list[tuple[RequestHandle, tuple[int, ...], str | None, int]] = []
    for step in range(8):
        for joins, prompt, adapter, n in plan:
            if joins == step:
                request = GenerationRequest(prompt, adapter=adapter, max_new_tokens=n)
                handles.append((submitted(engine, request), prompt, adapter, n))
        engine.step()
    assert engine.stats().running >= 4  # they really shared the batch
    drain(engine)
    for handle, prompt, adapter, n in handles:
        done = handle.result(timeout_s=0)
        assert list(done.token_ids) == generate_alone(prompt, adapter, n), adapter
        assert done.usage.prompt_tokens == len(prompt)
        assert done.usage.completion_tokens == len(done.token_ids)


def test_a_prompt_longer_than_the_running_rows_pads_them_and_changes_nothing(
    make_engine: Any, generate_alone: Any
) -> None:
    engine = make_engine()
    short = submitted(engine, GenerationRequest(PROMPTS[3], "ft:gamma", max_new_tokens=10))
    engine.step()  # the running cache is 2 + 2 columns wide; the newcomer needs 11
    long = submitted(engine, GenerationRequest(PROMPTS[0], "ft:beta", max_new_tokens=10))
    drain(engine)
    assert list(short.result(0).token_ids) == generate_alone(PROMPTS[3], "ft:gamma", 10)
    assert list(long.result(0).token_ids) == generate_alone(PROMPTS[0], "ft:beta", 10)


def test_a_request_joins_between_decode_steps_not_after_the_batch(make_engine: Any) -> None:
    engine = make_engine()
    first = submitted(engine, GenerationRequest(PROMPTS[0], "ft:alpha", max_new_tokens=30))
    for _ in range(3):
        engine.step()
    second = submitted(engine, GenerationRequest(PROMPTS[1], "ft:beta", max_new_tokens=30))
    engine.step()
    chunks_first = list(_ready(first))
    chunks_second = list(_ready(second))
    # One step after joining, the newcomer has its first tokens while the first request,
    # still far from its end, kept decoding in the same batch.
    assert len(chunks_second) == 2  # prefill's token and the shared decode step's
    assert len(chunks_first) == 5  # 2 in its first step, then one per step
    assert engine.stats().running == 2


def test_base_requests_in_a_mixed_batch_equal_the_base_alone(
    make_engine: Any, generate_alone: Any
) -> None:
    engine = make_engine()
    base = [submitted(engine, GenerationRequest(p, None, max_new_tokens=10)) for p in PROMPTS[:3]]
    for adapter in ("ft:alpha", "ft:beta"):
        submitted(engine, GenerationRequest(PROMPTS[3], adapter, max_new_tokens=10))
    drain(engine)
    for handle, prompt in zip(base, PROMPTS[:3], strict=True):
        assert list(handle.result(0).token_ids) == generate_alone(prompt, None, 10)


def test_the_threaded_loop_serves_concurrent_requests(
    make_engine: Any, generate_alone: Any
) -> None:
    engine = make_engine(start=True)
    adapters = ["ft:alpha", None, "ft:beta", "ft:gamma", None]
    jobs = list(zip(PROMPTS, adapters, strict=True))
    handles = [submitted(engine, GenerationRequest(p, a, max_new_tokens=8)) for p, a in jobs]
    for handle, (prompt, adapter) in zip(handles, jobs, strict=True):
        done = handle.result(timeout_s=60)
        assert list(done.token_ids) == generate_alone(prompt, adapter, 8)
        assert done.time_to_first_token_s is not None and done.time_to_first_token_s > 0


def test_stop_strings_end_the_text_and_are_never_streamed(make_engine: Any) -> None:
    engine = make_engine()
    plain = submitted(engine, GenerationRequest(PROMPTS[0], "ft:beta", max_new_tokens=20))
    drain(engine)
    text = plain.result(0).text
    words = text.split()
    assert len(words) >= 4, text
    stop = f"{words[2]} {words[3]}"
    cut = text.index(stop)

    stopped = submitted(
        engine, GenerationRequest(PROMPTS[0], "ft:beta", max_new_tokens=20, stop=("zzzq", stop))
    )
    drain(engine)
    events = list(stopped.events(timeout_s=0))
    done = events[-1]
    assert isinstance(done, Completion)
    assert done.finish_reason is FinishReason.STOP
    assert done.text == text[:cut]
    streamed = "".join(e.text for e in events if isinstance(e, TokenChunk))
    assert streamed == done.text
    assert len(done.token_ids) < 20


def test_a_stop_token_ends_the_request_as_stop(make_engine: Any) -> None:
    first = make_engine()
    plain = submitted(first, GenerationRequest(PROMPTS[4], "ft:alpha", max_new_tokens=10))
    drain(first)
    tokens = plain.result(0).token_ids
    # The last token that had not come before: the request must end right there.
    stop_at = max(i for i, t in enumerate(tokens) if tokens.index(t) == i)

    engine = make_engine(stop_token_ids=frozenset({tokens[stop_at]}))
    handle = submitted(engine, GenerationRequest(PROMPTS[4], "ft:alpha", max_new_tokens=10))
    drain(engine)
    done = handle.result(0)
    assert done.finish_reason is FinishReason.STOP
    assert done.token_ids == tokens[: stop_at + 1]


def test_the_same_seed_samples_the_same_tokens_whatever_shares_the_batch(
    make_engine: Any,
) -> None:
    def sampled(seed: int, neighbours: int) -> tuple[int, ...]:
        engine = make_engine()
        request = GenerationRequest(
            PROMPTS[2], "ft:gamma", max_new_tokens=12, temperature=1.0, top_p=0.9, seed=seed
        )
        handle = submitted(engine, request)
        for i in range(neighbours):
            other = GenerationRequest(PROMPTS[i], "ft:alpha", max_new_tokens=5, temperature=1.0)
            submitted(engine, other)
        drain(engine)
        return handle.result(0).token_ids

    assert sampled(7, 0) == sampled(7, 3)
    assert sampled(7, 0) != sampled(8, 0)


def test_a_cancelled_request_leaves_the_batch_at_the_next_step(
    make_engine: Any, generate_alone: Any
) -> None:
    engine = make_engine()
    stays = submitted(engine, GenerationRequest(PROMPTS[0], "ft:alpha", max_new_tokens=12))
    goes = submitted(engine, GenerationRequest(PROMPTS[1], "ft:beta", max_new_tokens=12))
    engine.step()
    goes.cancel()
    engine.step()
    assert engine.stats().running == 1
    assert goes.result(0).finish_reason is FinishReason.CANCELLED
    drain(engine)
    assert list(stays.result(0).token_ids) == generate_alone(PROMPTS[0], "ft:alpha", 12)


def test_an_abandoned_handle_cancels_its_request(make_engine: Any) -> None:
    engine = make_engine()
    kept = submitted(engine, GenerationRequest(PROMPTS[0], "ft:alpha", max_new_tokens=12))
    handle = submitted(engine, GenerationRequest(PROMPTS[1], None, max_new_tokens=12))
    engine.step()
    del handle
    gc.collect()
    engine.step()
    assert engine.stats().running == 1
    drain(engine)
    assert len(kept.result(0).token_ids) == 12  # the one still held ran to its end


def test_a_full_queue_is_refused_with_a_retry_hint(make_engine: Any) -> None:
    engine = make_engine(max_waiting=2)
    for _ in range(2):
        submitted(engine, GenerationRequest(PROMPTS[1], max_new_tokens=2))
    refused = engine.submit(GenerationRequest(PROMPTS[1], max_new_tokens=2))
    assert isinstance(refused, Rejection)
    assert refused.code == "queue_full" and refused.retry_after_s
    engine.step()  # the waiting ones join the batch, which frees the queue
    assert isinstance(engine.submit(GenerationRequest(PROMPTS[1], max_new_tokens=2)), RequestHandle)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (GenerationRequest(PROMPTS[0], max_new_tokens=200), "context_length_exceeded"),
        (GenerationRequest(PROMPTS[0], adapter="ft:nobody", max_new_tokens=2), "adapter_not_found"),
        (GenerationRequest((), max_new_tokens=2), "invalid_request"),
        (GenerationRequest(PROMPTS[0], max_new_tokens=0), "invalid_request"),
        (GenerationRequest(PROMPTS[0], top_p=0.0), "invalid_request"),
        (GenerationRequest((101, 10**6), max_new_tokens=2), "invalid_request"),
    ],
)
def test_bad_requests_are_refused_before_they_run(
    make_engine: Any, request_: GenerationRequest, code: str
) -> None:
    engine = make_engine()
    refused = engine.submit(request_)
    assert isinstance(refused, Rejection) and refused.code == code, refused
    assert engine.stats().waiting == 0


def test_the_context_error_names_the_limit(make_engine: Any) -> None:
    refused = make_engine().submit(GenerationRequest(PROMPTS[0], max_new_tokens=120))
    assert isinstance(refused, Rejection)
    assert "maximum context length is 128 tokens" in refused.message
    assert "131 tokens (11 in the prompt, 120 for the completion)" in refused.message


def test_chat_messages_render_through_the_chat_template(make_engine: Any, tokenizer: Any) -> None:
    from worker.inference.generation.prompts import chat_prompt_ids

    ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": "hello there"}])
    assert tokenizer.decode(ids).endswith("[ assistant ]")
    engine = make_engine()
    handle = submitted(engine, GenerationRequest(ids, "ft:alpha", max_new_tokens=4))
    drain(engine)
    assert handle.result(0).usage.prompt_tokens == len(ids)


def _ready(handle: RequestHandle) -> list[TokenChunk]:
    chunks = []
    try:
        for event in handle.events(timeout_s=0.01):
            assert isinstance(event, TokenChunk)
            chunks.append(event)
    except TimeoutError:
        pass
    return chunks
