"""The web dashboard at /ui: plain HTML, JavaScript and CSS, no build step, no CDN.

The page is public and holds no data; it calls the /v1 API from the browser with the
team key the user enters once (kept in the browser's localStorage, never in a cookie,
so no cross-site request can use it).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory
from flask.blueprints import BlueprintSetupState

from api.openapi import documented

STATIC = Path(__file__).parent / "static"
bp = Blueprint("ui", __name__, url_prefix="/ui")


@bp.record_once
def _site_root(state: BlueprintSetupState) -> None:
    """``/`` leads to the dashboard: what a person opening the API's address wants."""
    state.app.add_url_rule("/", "dashboard_home", _home)


@documented({302: "to /ui/"}, tag="dashboard", public=True)
def _home() -> Response:
    """The dashboard (the API's own address)."""
    return redirect("/ui/", code=302)  # type: ignore[return-value]


@bp.get("")
@documented({308: "to /ui/"}, tag="dashboard", public=True)
def root() -> Response:
    """The dashboard's address without a trailing slash."""
    return redirect("/ui/", code=308)  # type: ignore[return-value]


@bp.get("/")
@documented({200: "the dashboard"}, tag="dashboard", media={200: ["text/html"]}, public=True)
def index() -> Response:
    """The dashboard: jobs, a job's curves and report, the pool, models."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@bp.get("/<path:name>")
@documented(
    {200: "a script or style of the dashboard"},
    (404,),
    tag="dashboard",
    media={200: ["text/javascript", "text/css"]},
    public=True,
)
def asset(name: str) -> Response:
    """The dashboard's scripts and styles."""
    return send_from_directory(STATIC, name, max_age=0)
