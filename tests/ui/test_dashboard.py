"""The dashboard in a real browser (Playwright driving Debian's chromium) against a live
instance with a finished job: uPlot draws its curves, the evaluation report is on the page,
and the README's screenshot tool photographs it (issue 24, items 3 and 5)."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import requests
from playwright.sync_api import Page

from commands.screenshot import shoot_job_page
from tests.cli.conftest import LiveApi
from tests.ui.conftest import chart
from tunepool.synthetic import conll_text


def finished_job(live_api: LiveApi, model: str) -> str:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {live_api.key}"
    ids = []
    for name, n, seed in (("train", 120, 1), ("validation", 30, 2)):
        resp = http.post(
            f"{live_api.url}/v1/datasets",
            data={"task": "token-classification", "format": "conll", "name": name},
            files={"file": (f"{name}.conll", io.BytesIO(conll_text(n, seed=seed).encode()))},
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    resp = http.post(
        f"{live_api.url}/v1/jobs",
        json={
            "task": "token-classification",
            "base_model": model,
            "train_dataset": ids[0],
            "validation_dataset": ids[1],
            "model_name": "ui-ner",
            "hyperparameters": {"epochs": 3, "batch_size": 8, "learning_rate": 1e-3},
        },
    )
    assert resp.status_code == 201, resp.text
    job_id = str(resp.json()["id"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = http.get(f"{live_api.url}/v1/jobs/{job_id}").json()["state"]
        if state in ("succeeded", "failed", "cancelled"):
            assert state == "succeeded", live_api.workers.log("wA")[-3000:]
            http.put(f"{live_api.url}/v1/models/ui-ner/aliases/production", json={"version": 1})
            return job_id
        time.sleep(0.5)
    raise AssertionError("the job did not finish")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_dashboard_draws_the_curves_and_report_of_a_finished_job(
    live_api: LiveApi, tiny_model: str, page: Page, tmp_path: Path
) -> None:
    live_api.workers.start("wA")
    job_id = finished_job(live_api, tiny_model)
    page.goto(f"{live_api.url}/ui/#/jobs/{job_id}?key={live_api.key}")
    page.wait_for_selector("body[data-ready='1']")

    # The curves are uPlot's canvases, drawn: the training loss through every progress
    # report and the held-out loss after each of the 3 epochs, on one step axis; the
    # evaluation metrics by epoch. No hand-drawn SVG is left.
    loss = chart(page, "loss-chart")
    assert loss.width > 0 and loss.height > 0
    assert loss.series["training loss"] >= 2 and loss.series["held-out loss"] == 3, loss
    assert loss.inked["training loss"] > 50 and loss.inked["held-out loss"] > 50, loss
    throughput = chart(page, "throughput-chart")
    assert throughput.series["tokens/s"] >= 2 and throughput.inked["tokens/s"] > 50
    metrics = chart(page, "metrics-chart")
    assert {"f1", "precision", "recall"} <= set(metrics.series), metrics
    assert set(metrics.series.values()) == {3}
    assert page.locator("#charts .uplot").count() == 3 and page.locator("#charts svg").count() == 0

    # The evaluation report, entity and token level.
    report = page.inner_text("#report")
    assert "Entity level (seqeval)" in report and "Token level" in report
    assert "micro avg" in report and "best epoch" in report
    assert page.inner_text("#job-state") == "succeeded"

    # The README's screenshot tool (commands/screenshot.py) on this page: the job page down
    # to its report, drawn.
    shot = tmp_path / "dashboard.png"
    shoot_job_page(page, live_api.url, live_api.key, job_id, shot)
    data = shot.read_bytes()
    width, height = png_size(data)
    assert width == 1280 and height > 800 and len(data) > 20_000

    # (A new fragment is not a new document: each page is awaited by what it shows.)
    page.goto(f"{live_api.url}/ui/#/jobs?key={live_api.key}")
    page.wait_for_selector(f"#jobs a[href='#/jobs/{job_id}']")
    page.goto(f"{live_api.url}/ui/#/pool?key={live_api.key}")
    assert "wA" in page.inner_text("table#pool")
    page.goto(f"{live_api.url}/ui/#/models?key={live_api.key}")
    models = page.inner_text("table#models")
    assert "ui-ner" in models and "production → 1" in models


def test_without_a_key_the_dashboard_asks_for_one(live_api: LiveApi, page: Page) -> None:
    page.goto(f"{live_api.url}/ui/")
    assert "Team API key" in page.inner_text("#login-form")
