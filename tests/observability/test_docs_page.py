"""/docs in a real browser (Playwright driving Debian's chromium): Swagger UI renders every
operation of /openapi.json, and the page asks no host but the API for anything."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Request, Route, sync_playwright
from werkzeug.serving import make_server

from api.app import create_app
from commands.netutil import free_port
from storage.platform import Platform
from storage.schema import upgrade
from tunepool.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    platform = Platform(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}"))
    upgrade(platform.engine)
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(platform=platform), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(10)
    platform.close()


def test_the_docs_page_renders_every_operation_offline(api_url: str) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium must be installed on CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    elsewhere: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def only_this_api(route: Route, request: Request) -> None:
        if request.url.startswith(f"{api_url}/") or request.url.startswith("data:"):
            route.continue_()
        else:  # a CDN, a font, a validator badge: refused, and the test fails
            elsewhere.append(request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(30_000)
        page.route("**/*", only_this_api)
        page.on("response", lambda r: r.status != 200 and failed.append(f"{r.status} {r.url}"))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{api_url}/docs")
        doc = page.request.get(f"{api_url}/openapi.json").json()
        count = sum(len(item) for item in doc["paths"].values())
        page.wait_for_function(
            f"document.querySelectorAll('.opblock').length === {count}", timeout=30_000
        )
        assert page.locator(".info .title").inner_text().startswith("tunepool")
        # An operation opens with its request body and answers, from the models.
        page.locator("#operations-jobs-post__v1_jobs .opblock-summary").click()
        submit = page.locator("#operations-jobs-post__v1_jobs")
        submit.get_by_text("Request body").wait_for()
        assert "train_dataset" in submit.locator(".opblock-section-request-body").inner_text()
        assert "queue_position" in submit.locator(".response[data-code='201']").inner_text()
        assert '"field"' in submit.locator(".response[data-code='422']").inner_text()
        browser.close()
    assert not elsewhere, elsewhere
    assert not failed, failed
    assert not errors, errors
