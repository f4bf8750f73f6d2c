"""The live API fixtures of the CLI tests serve the browser tests too; the browser is
Debian's chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.cli.conftest import e2e_database_url, live, live_api, tiny_model  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def need_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium must be installed on CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return CHROMIUM


@pytest.fixture
def page() -> Iterator[Page]:
    chromium = need_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@dataclass(frozen=True)
class Chart:
    """What uPlot drew for one chart: its series and how much of each colour is on the canvas."""

    width: int
    height: int
    series: dict[str, int]  # label -> points with a value
    inked: dict[str, int]  # label -> canvas pixels of the series' colour


# Reads the page's uPlot instance (charts.js keeps them in CHARTS by id) and counts the
# canvas pixels near each series' stroke colour: a line drawn, not just a chart made.
_READ_CHART = """id => {
  const chart = CHARTS[id];
  const canvas = document.querySelector(`#${id} .uplot canvas`);
  if (!chart || !canvas) return null;
  const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = hex => [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
  const series = {}, inked = {};
  chart.series.slice(1).forEach((s, i) => {
    series[s.label] = chart.data[i + 1].filter(v => v != null).length;
    const [r, g, b] = rgb(s._stroke || s.stroke(chart, i + 1));
    let n = 0;
    for (let p = 0; p < px.length; p += 4) {
      const off = Math.abs(px[p] - r) + Math.abs(px[p + 1] - g) + Math.abs(px[p + 2] - b);
      if (px[p + 3] > 200 && off < 40) n++;
    }
    inked[s.label] = n;
  });
  return {width: canvas.width, height: canvas.height, series, inked};
}"""


def chart(page: Page, chart_id: str) -> Chart:
    found: dict[str, Any] | None = page.evaluate(_READ_CHART, chart_id)
    assert found is not None, f"no uPlot chart #{chart_id} on the page"
    return Chart(found["width"], found["height"], found["series"], found["inked"])
