"""Issues 22 and 23, accepted end to end with the official ``openai`` SDK against real
processes: a live API, a Celery worker that fine-tunes, and a serving worker that answers.

A chat JSONL uploaded with ``files.create`` fine-tunes the tiny random Llama with LoRA
(``fine_tuning.jobs.create``); the job's ``fine_tuned_model`` then answers
``chat.completions.create`` with and without streaming, ``models.list()`` shows it, and
another team gets a 404 for it by that name, exactly as for a model that does not exist.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import openai
import pytest

from commands.redis_server import RedisServer, start_redis
from scheduler.ticks import run_reaper
from storage.db import transaction
from storage.teams import create_team
from tests.cli.conftest import LiveApi, live_api  # noqa: F401
from tests.conftest import TINY_CHAT_BASE
from tests.training.causal_lm_fixtures import colour_chats

pytestmark = pytest.mark.chaos

QUESTION = [{"role": "user", "content": "Colour of der ?"}]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the session's serving worker (tests/conftest.py), on
    the session's Redis, reads another object store and must not take these requests."""
    server = start_redis(tmp_path_factory.mktemp("redis-e2e-chat"), persist=False)
    yield server
    server.stop()


def sdk(live_api: LiveApi, key: str) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=f"{live_api.url}/v1", api_key=key, max_retries=0, timeout=60)


def jsonl(rows: list[dict[str, object]]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(row) + "\n" for row in rows).encode())


def test_upload_fine_tune_and_chat_with_the_fine_tuned_model(live_api: LiveApi) -> None:  # noqa: F811
    live_api.workers.start("wA")
    live_api.workers.start_serving()  # starts while the job trains
    client = sdk(live_api, live_api.key)

    train = client.files.create(
        file=("colours.jsonl", jsonl(colour_chats(16))), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model=TINY_CHAT_BASE,
        training_file=train.id,
        hyperparameters={"n_epochs": 1, "batch_size": 8},  # two steps
        suffix="colours",
    )
    assert job.model == TINY_CHAT_BASE and job.status in ("validating_files", "queued")

    deadline = time.monotonic() + 120
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, (job, live_api.workers.log("wA")[-3000:])
        run_reaper(live_api.workers.platform)  # as the scheduler's beat would
        time.sleep(0.2)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", (job.error, live_api.workers.log("wA")[-3000:])
    name = job.fine_tuned_model
    assert name is not None and name.startswith(f"ft:{TINY_CHAT_BASE}:") and job.id in name

    whole = client.chat.completions.create(
        model=name,
        messages=QUESTION,
        max_tokens=6,
        temperature=0,
    )
    text = whole.choices[0].message.content
    assert whole.model == name and isinstance(text, str) and text != ""
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 6

    # Streamed: pieces of the same greedy answer, and the stream ends (the SDK stops at
    # ``data: [DONE]``) with a finish reason on its last choice.
    chunks = list(
        client.chat.completions.create(
            model=name,
            messages=QUESTION,
            max_tokens=6,
            temperature=0,
            stream=True,
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    # The SDK also ends quietly on a cut stream: the wire must close with OpenAI's marker.
    with client.chat.completions.with_streaming_response.create(
        model=name, messages=QUESTION, max_tokens=2, stream=True
    ) as raw:
        events = [line for line in raw.iter_lines() if line]
    assert events[-1] == "data: [DONE]" and len(events) >= 2

    listed = {m.id for m in client.models.list()}
    assert {name, TINY_CHAT_BASE} <= listed
    assert client.models.retrieve(name).id == name

    # Team B: team A's fine-tune does not exist for it, by any route.
    with transaction(live_api.workers.platform.sessions) as session:
        _, other_key = create_team(session, "team-b", role="member")
    other = sdk(live_api, other_key)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model=name, messages=QUESTION)
    with pytest.raises(openai.NotFoundError):
        other.models.retrieve(name)
    assert name not in {m.id for m in other.models.list()}
