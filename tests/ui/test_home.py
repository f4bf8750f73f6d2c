"""The API's own address leads a person to the dashboard."""

from __future__ import annotations

from pathlib import Path

from api.app import create_app
from storage.platform import Platform
from storage.schema import upgrade
from tunepool.settings import Settings


def test_the_root_leads_to_the_dashboard(tmp_path: Path) -> None:
    platform = Platform(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'db'}"))
    upgrade(platform.engine)
    client = create_app(platform=platform).test_client()
    answer = client.get("/")
    assert answer.status_code == 302 and answer.headers["Location"] == "/ui/"
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200 and b'<script src="/ui/app.js">' in page.data
    platform.close()
