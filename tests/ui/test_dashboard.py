"""The dashboard in a real browser (Debian's headless chromium) against a live instance
with a finished job: the loss curve and the evaluation report are on the page."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.cli.conftest import LiveApi
from tunepool.synthetic import conll_text

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO = Path(__file__).resolve().parents[2]


def browser(url: str, *extra: str) -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium must be installed on CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            # Virtual time runs until the page's fetches settle (or the budget is spent).
            "--virtual-time-budget=15000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


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


def test_dashboard_shows_the_loss_curve_and_report_of_a_finished_job(
    live_api: LiveApi, tiny_model: str, tmp_path: Path
) -> None:
    if CHROMIUM is None:
        browser("about:blank")  # skips (or fails on CI) before training anything
    live_api.workers.start("wA")
    job_id = finished_job(live_api, tiny_model)
    page = f"{live_api.url}/ui/#/jobs/{job_id}?key={live_api.key}"

    dom = browser(page, "--dump-dom")
    assert 'data-ready="1"' in dom, dom[-2000:]
    # The loss curve: an SVG path through every progress report.
    loss = re.search(r'<svg[^>]*id="loss-chart".*?</svg>', dom, re.S)
    assert loss, dom[-3000:]
    points = re.search(r'data-series="loss" data-points="(\d+)"', loss.group(0))
    assert points and int(points.group(1)) >= 2
    assert re.search(r'<path d="M[\d.]+,[\d.]+L', loss.group(0))
    metrics_chart = re.search(r'<svg[^>]*id="metrics-chart".*?</svg>', dom, re.S)
    assert metrics_chart and 'data-series="' in metrics_chart.group(0)
    # The evaluation report, entity and token level.
    report = dom[dom.index('id="report"') :]
    assert "Entity level (seqeval)" in report and "Token level" in report
    assert "micro avg" in report and "best epoch" in report
    assert "succeeded" in dom and "the key was refused" not in dom

    shot = tmp_path / "dashboard.png"
    browser(page, f"--screenshot={shot}", "--window-size=1280,1100")
    data = shot.read_bytes()
    assert png_size(data) == (1280, 1100) and len(data) > 20_000  # a drawn page, not a blank one
    if os.environ.get("TUNEPOOL_UPDATE_SCREENSHOT") == "1":
        # The README's picture is refreshed on request, so a test run never dirties the tree.
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "dashboard.png")

    jobs = browser(f"{live_api.url}/ui/#/jobs?key={live_api.key}", "--dump-dom")
    assert f'href="#/jobs/{job_id}"' in jobs and "succeeded" in jobs
    pool = browser(f"{live_api.url}/ui/#/pool?key={live_api.key}", "--dump-dom")
    assert 'id="pool"' in pool and ">wA<" in pool
    models = browser(f"{live_api.url}/ui/#/models?key={live_api.key}", "--dump-dom")
    assert ">ui-ner<" in models and "production → 1" in models


def test_without_a_key_the_dashboard_asks_for_one(live_api: LiveApi) -> None:
    dom = browser(f"{live_api.url}/ui/", "--dump-dom")
    assert 'id="login-form"' in dom and "Team API key" in dom
