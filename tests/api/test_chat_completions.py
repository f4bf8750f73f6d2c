"""Chat and text completions through the official ``openai`` SDK, against a live API and
the session's real serving worker: a tiny random Llama base and a real LoRA adapter
(saved by PEFT) registered as a team's causal-LM version."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from commands.netutil import free_port
from storage.platform import Platform
from tests.api.conftest import KeyFactory
from tests.api.models_helpers import publish_version
from tests.conftest import TINY_CHAT_BASE
from tests.inference.generation.tiny_llama import lora_adapter_dir
from tests.serving_process import ServingProcess
from tunepool.serving_protocol import base_key

MESSAGES = [{"role": "user", "content": "Say something"}]


@pytest.fixture(scope="module")
def adapter_dir(tiny_base_models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = Path(tiny_base_models[TINY_CHAT_BASE])
    return lora_adapter_dir(base, tmp_path_factory.mktemp("chat-adapter"), seed=1)


@pytest.fixture
def live_url(app: Flask, serving: ServingProcess) -> Iterator[str]:
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    thread.join()


def sdk(url: str, headers: dict[str, str]) -> openai.OpenAI:
    key = headers["Authorization"].removeprefix("Bearer ")
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=60)


def test_chat_and_completions_through_the_openai_sdk(
    live_url: str,
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    adapter_dir: Path,
    serving: ServingProcess,
) -> None:
    a = make_key("chat-a")
    mv = publish_version(
        platform, "chat-a", "support-bot", adapter_dir, task="causal-lm",
        base_model=TINY_CHAT_BASE, artifact="adapter",
    )  # fmt: skip
    assert (
        client.put(
            "/v1/models/support-bot/aliases/production", headers=a, json={"version": 1}
        ).status_code
        == 200
    )
    ai = sdk(live_url, a)

    whole = ai.chat.completions.create(
        model="support-bot@production",
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,  # type: ignore[arg-type]
    )
    text = whole.choices[0].message.content
    assert isinstance(text, str) and whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage.prompt_tokens > 0
    assert 0 < whole.usage.completion_tokens <= 8
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    # Streamed, greedy: the same text in pieces, then a usage chunk.
    chunks = list(
        ai.chat.completions.create(
            model="ft:support-bot:1",
            messages=MESSAGES,  # type: ignore[arg-type]
            max_completion_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage

    # The adapter changes the answer: the base alone says something else.
    base = ai.chat.completions.create(
        model=TINY_CHAT_BASE,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,  # type: ignore[arg-type]
    )
    assert base.choices[0].message.content != text

    # The worker advertises the base and the adapter it holds (the API routes by this).
    # (An advert is the last heartbeat's snapshot: wait for the one after these answers.)
    deadline = time.monotonic() + 10
    while not {base_key(TINY_CHAT_BASE), mv.id} <= set(getattr(serving.advert(), "models", {})):
        assert time.monotonic() < deadline, serving.advert()
        time.sleep(0.1)

    completion = ai.completions.create(model="support-bot", prompt="Once upon", max_tokens=4)
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens <= 4

    # The raw stream ends with [DONE].
    raw = requests.post(
        f"{live_url}/completions",
        headers=a,
        json={"model": "support-bot", "prompt": "Hi", "max_tokens": 3, "stream": True},
        timeout=60,
    )
    assert raw.status_code == 200 and raw.text.endswith("data: [DONE]\n\n"), raw.text

    with pytest.raises(openai.BadRequestError) as n_two:
        ai.chat.completions.create(model="support-bot", messages=MESSAGES, n=2)  # type: ignore[arg-type]
    assert n_two.value.status_code == 400 and n_two.value.param == "n", n_two.value.body

    with pytest.raises(openai.BadRequestError) as too_long:
        ai.completions.create(model="support-bot", prompt="x" * 1100, max_tokens=4)
    assert "maximum context length" in str(too_long.value), too_long.value

    # Another team: every name of A's model is a 404, exactly like a missing one.
    b = sdk(live_url, make_key("chat-b"))
    for name in ("support-bot", "support-bot@production", "support-bot:1", "ft:support-bot:1"):
        with pytest.raises(openai.NotFoundError):
            b.chat.completions.create(model=name, messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        ai.chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]

    # The team's own fine-tuned chat model is listed to it, and only to it.
    listed = client.get("/v1/models", headers=a).get_json()["data"]
    assert "support-bot" in [m["name"] for m in listed]
    others = client.get("/v1/models", headers=make_key("chat-b")).get_json()["data"]
    assert "support-bot" not in [m["name"] for m in others]

    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'tunepool_chat_tokens_total{kind="completion",team="chat-a"}' in metrics
    assert "tunepool_chat_time_to_first_token_seconds_bucket" in metrics
    assert "tunepool_serving_adapters_resident" in metrics
