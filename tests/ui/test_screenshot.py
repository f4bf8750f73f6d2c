"""The README's dashboard picture is of a real run (issue 24, item 5): the caption that
``make screenshot`` (commands/screenshot.py) writes beside it names a fine-tune of a
base model the platform ships, with entity scores that are not zero, and the picture is
the one that run took (its SHA-256). A picture of an untrained tiny model (every F1
0.0000), or one put there by hand, fails."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunepool.settings import PACKAGED_BASE_MODELS

REPO = Path(__file__).resolve().parents[2]
PICTURE = REPO / "docs" / "dashboard.png"


def test_the_readme_screenshot_is_of_a_real_run() -> None:
    assert "](docs/dashboard.png)" in (REPO / "README.md").read_text("utf-8")
    caption = json.loads(PICTURE.with_suffix(".json").read_text("utf-8"))
    assert hashlib.sha256(PICTURE.read_bytes()).hexdigest() == caption["png_sha256"]
    assert caption["task"] == "token-classification"
    assert caption["base_model"] in PACKAGED_BASE_MODELS
    scores = caption["entity_f1"]
    assert {"LOC", "ORG", "PER", "micro avg"} <= set(scores), scores
    assert scores["micro avg"] > 0.5 and min(scores.values()) > 0, scores
