"""The job page in a real browser (Playwright driving Debian's chromium) against a live API
and a real worker: each task's report, what a job runs and where it stands, its live
log, and Cancel for members (issue 24, items 1, 2 and 7)."""

from __future__ import annotations

import io
import random
import re
import time

import requests
from playwright.sync_api import Page
from sqlalchemy import select

from storage.db import transaction
from storage.models import Team
from storage.teams import issue_key
from tests.cli.conftest import LiveApi

TERMINAL = ("succeeded", "failed", "cancelled")


def session_for(live_api: LiveApi, key: str | None = None) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key or live_api.key}"
    return http


def upload(http: requests.Session, live_api: LiveApi, task: str, fmt: str, text: str) -> str:
    resp = http.post(
        f"{live_api.url}/v1/datasets",
        data={"task": task, "format": fmt, "name": f"{task}-data"},
        files={"file": (f"data.{fmt}", io.BytesIO(text.encode()))},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def submit(http: requests.Session, live_api: LiveApi, **body: object) -> str:
    resp = http.post(f"{live_api.url}/v1/jobs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def wait_for(
    http: requests.Session, live_api: LiveApi, job_id: str, states: tuple[str, ...]
) -> str:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = str(http.get(f"{live_api.url}/v1/jobs/{job_id}").json()["state"])
        if state in states:
            return state
        time.sleep(0.5)
    raise AssertionError(f"{job_id} never reached {states}: {live_api.workers.log('wA')[-2000:]}")


def spam_csv(count: int) -> str:
    rng = random.Random(3)
    rows = ["text,label"]
    for _ in range(count):
        spam = rng.random() < 0.4
        words = rng.choices(
            ["win", "free", "prize", "cash"] if spam else ["see", "you", "home"], k=5
        )
        rows.append(f"{' '.join(words)},{'spam' if spam else 'ham'}")
    return "\n".join(rows) + "\n"


def open_job(page: Page, live_api: LiveApi, job_id: str, key: str | None = None) -> None:
    page.goto(f"{live_api.url}/ui/#/jobs/{job_id}?key={key or live_api.key}")
    page.wait_for_selector("body[data-ready='1']")


def test_classification_and_masked_lm_jobs_show_their_reports(
    live_api: LiveApi, tiny_model: str, page: Page
) -> None:
    live_api.workers.start("wA", slots=2)
    http = session_for(live_api)
    texts = upload(http, live_api, "sequence-classification", "csv", spam_csv(60))
    corpus = upload(http, live_api, "masked-lm", "text", "\n".join(["see you at home"] * 40))
    hyper = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3}
    classifier = submit(
        http, live_api, task="sequence-classification", base_model=tiny_model,
        train_dataset=texts, hyperparameters=hyper,
    )  # fmt: skip
    mlm = submit(
        http, live_api, task="masked-lm", base_model=tiny_model, train_dataset=corpus,
        hyperparameters=hyper,
    )  # fmt: skip
    assert wait_for(http, live_api, classifier, TERMINAL) == "succeeded"
    assert wait_for(http, live_api, mlm, TERMINAL) == "succeeded"

    open_job(page, live_api, classifier)
    classes = page.inner_text("#class-report")
    assert "spam" in classes and "ham" in classes and "macro avg" in classes
    cells = page.locator("#confusion-matrix td").all_inner_texts()
    counted = re.search(r"over (\d+) examples", page.inner_text("#report"))
    assert counted is not None
    examples = int(counted.group(1))
    assert len(cells) == 4 and sum(int(c) for c in cells) == examples > 0
    # What it ran and how it went: base model, data, hyperparameters, duration, progress.
    details = page.inner_text("#details")
    assert tiny_model in details and f"train {texts}" in details
    assert re.search(r"duration\s+\d+:\d\d:\d\d", details)
    assert "learning_rate" in page.inner_text("#hyperparameters")
    assert "100%" in page.inner_text("#progress")
    assert "claimed by wA" in page.inner_text("#log")

    open_job(page, live_api, mlm)
    assert "perplexity" in page.inner_text("#lm-report")


def test_a_member_cancels_a_running_job_from_its_page(live_api: LiveApi, page: Page) -> None:
    live_api.workers.allow_noop_engine()
    http = session_for(live_api)
    texts = upload(http, live_api, "sequence-classification", "csv", spam_csv(10))
    job_id = submit(
        http, live_api, task="sequence-classification", base_model="noop:sleep=120",
        train_dataset=texts,
    )  # fmt: skip
    # No worker yet: the page says why it waits.
    open_job(page, live_api, job_id)
    assert "waiting:" in page.inner_text("#waiting")
    live_api.workers.start("wA")
    page.wait_for_selector("#job-state:text('running')")
    # A viewer sees the job but no Cancel button.
    with transaction(live_api.workers.platform.sessions) as session:
        team = session.scalar(select(Team).where(Team.name == "cli"))
        assert team is not None
        viewer = issue_key(session, team, "viewer")
    open_job(page, live_api, job_id, viewer)
    assert page.locator("#cancel").count() == 0

    open_job(page, live_api, job_id)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    page.wait_for_selector("#job-state:text('cancelled')", timeout=60_000)
    assert wait_for(http, live_api, job_id, TERMINAL) == "cancelled"
    assert page.locator("#cancel").count() == 0
