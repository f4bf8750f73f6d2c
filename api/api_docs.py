"""GET /openapi.json, the document spectree makes (``api.openapi``), and GET /docs, Swagger
UI over it from files served here (``api/docs_ui``: no CDN, nothing from another host)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, send_from_directory

from api.openapi import documented, spec
from api.responses import OpenAPIDocument

DOCS_UI = Path(__file__).parent / "docs_ui"
bp = Blueprint("api_docs", __name__)


@bp.get("/openapi.json")
@documented({200: OpenAPIDocument}, tag="docs", public=True)
def document() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(spec.spec)


@bp.get("/docs")
@documented({200: "the documentation page"}, tag="docs", media={200: ["text/html"]}, public=True)
def page() -> Response:
    """The API's documentation, readable and tryable in a browser (works offline)."""
    return send_from_directory(DOCS_UI, "index.html", max_age=0)


@bp.get("/docs/<path:name>")
@documented(
    {200: "a script or style of the page"},
    (404,),
    tag="docs",
    media={200: ["text/javascript", "text/css"]},
    public=True,
)
def asset(name: str) -> Response:
    """The documentation page's scripts and styles (Swagger UI, vendored)."""
    return send_from_directory(DOCS_UI, name)
