"""GET /v1/alerts: a team sees its own incidents; admins also see the pool-wide ones."""

from __future__ import annotations

import time

from flask.testing import FlaskClient
from sqlalchemy import select

from storage.alerts import Incident
from storage.models import Team
from storage.platform import Platform


def _incident(rule: str, subject: str, team_id: str | None, state: str = "open") -> Incident:
    now = time.time()
    return Incident(
        rule=rule,
        subject=subject,
        open_key=f"{rule}|{subject}" if state == "open" else None,
        team_id=team_id,
        severity="error",
        state=state,
        summary=f"{rule} {subject}",
        details={},
        opened_at=now,
        last_seen_at=now,
        notifications=1,
    )


def test_alerts_are_team_scoped_and_pool_wide_ones_are_for_admins(
    platform: Platform, client: FlaskClient, make_key
) -> None:
    alpha_member, alpha_admin = make_key("alpha", "member"), make_key("alpha", "admin")
    beta = make_key("beta", "member")
    with platform.sessions() as session:
        ids = {t.name: t.id for t in session.scalars(select(Team))}
        session.add_all(
            [
                _incident("job_failed", "job:a1", ids["alpha"]),
                _incident("job_failed", "job:a0", ids["alpha"], state="resolved"),
                _incident("job_failed", "job:b1", ids["beta"]),
                _incident("worker_lost", "worker:w1", None),
            ]
        )
        session.commit()

    def subjects(headers: dict[str, str], query: str = "") -> list[str]:
        resp = client.get(f"/v1/alerts{query}", headers=headers)
        assert resp.status_code == 200, resp.get_json()
        return [i["subject"] for i in resp.get_json()["data"]]

    assert subjects(alpha_member) == ["job:a0", "job:a1"]
    assert subjects(alpha_member, "?state=open") == ["job:a1"]
    assert subjects(alpha_admin) == ["worker:w1", "job:a0", "job:a1"]
    assert subjects(beta) == ["job:b1"]
    assert client.get("/v1/alerts?state=bogus", headers=beta).status_code == 422
    assert client.get("/v1/alerts").status_code == 401
    page = client.get("/v1/alerts?limit=1", headers=alpha_admin).get_json()
    assert len(page["data"]) == 1 and page["next_cursor"]
    rest = client.get(f"/v1/alerts?limit=5&cursor={page['next_cursor']}", headers=alpha_admin)
    assert [i["subject"] for i in rest.get_json()["data"]] == ["job:a0", "job:a1"]
