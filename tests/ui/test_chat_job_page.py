"""A chat fine-tune's page in a real browser against real processes: its loss curve
(training and held-out, drawn by uPlot), its sample generations, and the playground that
sends one prompt through POST /v1/chat/completions to the base model and to the
fine-tuned one, side by side (issue 24, item 6).

The tiny random Llama is fine-tuned by a real worker and served by a real serving
worker (``tunepool serve``), as in tests/e2e/test_chat_end_to_end.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page
from sqlalchemy import select

from commands.redis_server import RedisServer, start_redis
from scheduler.ticks import run_reaper
from storage.db import transaction
from storage.models import Team
from storage.teams import issue_key
from tests.cli.conftest import LiveApi
from tests.conftest import TINY_CHAT_BASE
from tests.training.causal_lm_fixtures import colour_chats
from tests.ui.conftest import chart
from tests.ui.test_job_page import open_job, session_for, submit, upload

QUESTION = "Colour of der ?"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the session's serving worker (tests/conftest.py), on
    the session's Redis, reads another object store and must not take these requests."""
    server = start_redis(tmp_path_factory.mktemp("redis-ui-chat"), persist=False)
    yield server
    server.stop()


def chats(count: int, seed: int) -> str:
    return "".join(json.dumps(row) + "\n" for row in colour_chats(count, seed=seed))


def finished_chat_job(http: requests.Session, live_api: LiveApi) -> str:
    train = upload(http, live_api, "causal-lm", "chat", chats(24, seed=0))
    validation = upload(http, live_api, "causal-lm", "chat", chats(6, seed=1))
    job_id = submit(
        http, live_api, task="causal-lm", base_model=TINY_CHAT_BASE, train_dataset=train,
        validation_dataset=validation,
        # No model_name: the job names the model it stored all the same.
        hyperparameters={
            "lora_rank": 4, "lora_alpha": 8, "epochs": 2, "batch_size": 8, "max_length": 64,
            "learning_rate": 5e-3, "log_every_steps": 1, "sample_generations": 2,
        },
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while (state := http.get(f"{live_api.url}/v1/jobs/{job_id}").json()["state"]) not in (
        "succeeded", "failed", "cancelled",
    ):  # fmt: skip
        assert time.monotonic() < deadline, live_api.workers.log("wA")[-3000:]
        run_reaper(live_api.workers.platform)  # as the scheduler's beat would
        time.sleep(0.3)
    assert state == "succeeded", live_api.workers.log("wA")[-3000:]
    return job_id


def answer(page: Page, side: str) -> tuple[str, str, str]:
    """The panel's answer, error and usage line once its request has ended."""
    panel = f"#answer-{side}"
    page.wait_for_selector(f"{panel}[data-state='done'], {panel}[data-state='error']")
    return (
        page.inner_text(f"{panel} pre.text"),
        page.inner_text(f"{panel} p.error"),
        page.inner_text(f"{panel} p.usage"),
    )


def test_a_chat_fine_tune_shows_its_loss_curve_and_answers_beside_its_base(
    live_api: LiveApi, page: Page
) -> None:
    live_api.workers.start("wA")
    live_api.workers.start_serving()  # starts while the job trains
    http = session_for(live_api)
    job_id = finished_chat_job(http, live_api)

    open_job(page, live_api, job_id)
    # 24 chats, 8 a step, 2 epochs: 6 steps, each reported; held-out loss after each epoch.
    loss = chart(page, "loss-chart")
    assert loss.series == {"training loss": 6, "held-out loss": 2}, loss
    assert loss.inked["training loss"] > 50 and loss.inked["held-out loss"] > 20, loss
    assert "perplexity" in page.inner_text("#lm-report")
    assert page.locator("#samples tr").count() == 3  # a header and the two samples

    # The playground: the base model and the version the job stored, one prompt to both.
    page.wait_for_selector("#playground-form")
    assert page.inner_text("#answer-base code.model") == TINY_CHAT_BASE
    tuned = page.inner_text("#answer-tuned code.model")
    job = http.get(f"{live_api.url}/v1/jobs/{job_id}").json()
    assert tuned == f"{job['model_name']}:{job['metrics']['model_version']}"
    page.fill("#prompt", QUESTION)
    page.fill("#max-tokens", "6")
    page.click("#send")
    shown = {side: answer(page, side) for side in ("base", "tuned")}
    for side, model in (("base", TINY_CHAT_BASE), ("tuned", tuned)):
        text, error, usage = shown[side]
        assert error == "" and text != "" and usage.startswith(tuple("123456")), shown
        # What the page streamed is what the endpoint answers, greedy, in one piece.
        whole = http.post(
            f"{live_api.url}/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": QUESTION}],
                  "max_tokens": 6, "temperature": 0},
        )  # fmt: skip
        assert whole.status_code == 200, whole.text
        assert whole.json()["choices"][0]["message"]["content"] == text

    # A refusal is shown in each panel, with the endpoint's own words.
    page.fill("#prompt", "x " * 1200)
    page.click("#send")
    for side in ("base", "tuned"):
        text, error, _ = answer(page, side)
        assert text == "" and "HTTP 400" in error and "maximum context length" in error, error

    # A viewer sees the playground but cannot send (the chat endpoint takes members).
    with transaction(live_api.workers.platform.sessions) as session:
        team = session.scalar(select(Team).where(Team.name == "cli"))
        assert team is not None
        viewer = issue_key(session, team, "viewer")
    open_job(page, live_api, job_id, viewer)
    page.wait_for_selector("#send:disabled")
    assert "member key" in page.inner_text("#playground-form")
