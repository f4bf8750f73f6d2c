"""``tunepool teams me`` against a live API: quota and budget in words a team can act on."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from storage.db import transaction
from storage.models import Team
from tests.cli.conftest import LiveApi
from tests.cli.test_cli_job import cli


def set_budget(live_api: LiveApi, hours: float | None) -> None:
    with transaction(live_api.workers.platform.sessions) as session:
        session.execute(update(Team).where(Team.name == "cli").values(gpu_hours_budget=hours))


def test_a_team_without_a_budget_is_not_told_it_has_none_left(
    live_api: LiveApi, tmp_path: Path
) -> None:
    unset = cli(live_api, tmp_path, "teams", "me")
    assert unset.returncode == 0, unset.stderr
    assert "no GPU-hour budget set" in unset.stdout
    assert "left" not in unset.stdout

    set_budget(live_api, 2.5)
    budget = cli(live_api, tmp_path, "teams", "me")
    assert "GPU-hours 0.0 used of a budget of 2.5, 2.5 left" in budget.stdout

    set_budget(live_api, 0.0)
    spent = cli(live_api, tmp_path, "teams", "me")
    assert "of a budget of 0.0, 0.0 left" in spent.stdout
