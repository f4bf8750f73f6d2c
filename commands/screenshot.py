"""``make screenshot``: the README's picture of the dashboard, taken from a real run.

It starts the embedded platform in a scratch ``TUNEPOOL_HOME``, fine-tunes
all-MiniLM-L6-v2 on the generated NER data of ``make demo``, opens the finished job's
page in headless chromium (Playwright, a development dependency) and saves
``docs/dashboard.png``. Beside it, ``docs/dashboard.json`` says what the picture shows
(the job, its base model, its scores, the picture's SHA-256), so a test can check that
the README shows a real run and not a hand-placed or untrained one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from commands.demo import ApiClient, demo_key, follow_job
from commands.embedded import Embedded, start_platform
from tunepool.settings import load_settings
from tunepool.synthetic import conll_text

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[1]
BASE_MODEL = "all-MiniLM-L6-v2"
VIEWPORT = {"width": 1280, "height": 1000}


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A page of Debian's headless chromium (Playwright downloads no browser here)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise click.ClickException("chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"],
        )
        try:
            yield browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
        finally:
            browser.close()


def shoot_job_page(page: Page, api_url: str, key: str, job_id: str, path: Path) -> None:
    """The job page from the top down to the end of its evaluation report, as a PNG."""
    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{api_url}/ui/#/jobs/{job_id}?key={key}")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    page.wait_for_selector("#loss-chart .uplot canvas")
    # Folded, as a reader may fold it: the picture is about the curves and the report.
    page.locator("details:has(#hyperparameters)").evaluate("node => { node.open = false; }")
    box = page.locator("#report").bounding_box()
    if box is None:
        raise click.ClickException(f"the page of {job_id} has no evaluation report")
    bottom = min(box["y"] + box["height"] + 16, 2400)  # a README picture, not a scroll
    page.screenshot(
        path=str(path),
        full_page=True,
        clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": bottom},
    )


def finished_ner_job(api: ApiClient, sentences: int, epochs: int) -> dict[str, Any]:
    """What ``make demo`` trains, followed to its end."""
    train = api.upload("demo-ner-train", conll_text(sentences, seed=1, split="train"))
    validation = api.upload(
        "demo-ner-validation", conll_text(sentences // 4, seed=2, split="heldout")
    )
    job = api.post(
        "/v1/jobs",
        {
            "task": "token-classification",
            "base_model": BASE_MODEL,
            "train_dataset": train["id"],
            "validation_dataset": validation["id"],
            "hyperparameters": {"epochs": epochs, "learning_rate": 1e-4, "batch_size": 16},
            "model_name": "demo-ner",
        },
    )
    done: dict[str, Any] = follow_job(api, job["id"])
    if done["state"] != "succeeded":
        raise click.ClickException(f"job {done['id']} ended {done['state']}: {done.get('error')}")
    return done


def caption(job: dict[str, Any], png: Path) -> dict[str, Any]:
    """What the picture shows, checked by tests/ui/test_screenshot.py."""
    report = job["metrics"]["report"]
    entity = report["report"]["entity"]["default"]
    return {
        "taken_by": "make screenshot (python -m commands.screenshot)",
        "job": job["id"],
        "task": job["task"],
        "base_model": job["spec"]["base_model"],
        "hyperparameters": job["spec"]["hyperparameters"],
        "entity_f1": {label: round(row["f1-score"], 4) for label, row in entity.items()},
        "png_sha256": hashlib.sha256(png.read_bytes()).hexdigest(),
    }


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=REPO / "docs" / "dashboard.png")
@click.option("--sentences", default=480, show_default=True, help="training sentences")
@click.option("--epochs", default=3, show_default=True)
def main(out: Path, sentences: int, epochs: int) -> None:
    """Fine-tune the demo's NER model on a scratch platform and photograph its job page."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the services
    home = Path(tempfile.mkdtemp(prefix="tunepool-screenshot-"))
    platform: Embedded | None = None
    try:
        platform = start_platform(load_settings(home=home))
        key = demo_key(platform)
        job = finished_ner_job(ApiClient(platform.api_url, key), sentences, epochs)
        out.parent.mkdir(parents=True, exist_ok=True)
        with chromium_page() as page:
            shoot_job_page(page, platform.api_url, key, job["id"], out)
        described = caption(job, out)
        out.with_suffix(".json").write_text(json.dumps(described, indent=2) + "\n", "utf-8")
        click.echo(f"{out}: job {job['id']}, entity F1 {described['entity_f1']}")
    finally:
        if platform is not None:
            platform.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
