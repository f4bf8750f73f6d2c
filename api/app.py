"""The Flask application factory. Nothing connects at import time."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from api import after_writes, errors, guards, idempotency
from api.alerts import bp as alerts_bp
from api.api_docs import bp as api_docs_bp
from api.auth import load_caller
from api.chat_completions import bp as chat_completions_bp
from api.context import close_db
from api.datasets import bp as datasets_bp
from api.events_stream import bp as events_stream_bp
from api.job_priority import bp as job_priority_bp
from api.jobs import bp as jobs_bp
from api.json_provider import FiniteJSONProvider
from api.metrics import bp as metrics_bp
from api.model_jobs import bp as model_jobs_bp
from api.models import bp as models_bp
from api.openai_compat import bp as openai_compat_bp
from api.openai_files import bp as openai_files_bp
from api.openai_models import bp as openai_models_bp
from api.openapi import documented
from api.pool import bp as pool_bp
from api.responses import Health, Readiness
from api.schedules import bp as schedules_bp
from api.teams import bp as teams_bp
from api.ui import bp as ui_bp
from storage.platform import Platform
from tunepool.settings import Settings, load_settings


def create_app(settings: Settings | None = None, platform: Platform | None = None) -> Flask:
    platform = platform or Platform(settings or load_settings(), for_api=True)
    app = Flask("tunepool")
    app.json = FiniteJSONProvider(app)
    app.extensions["tunepool"] = platform
    app.config["MAX_CONTENT_LENGTH"] = platform.settings.max_upload_bytes
    errors.install(app)

    @app.before_request
    def _authenticate() -> None:
        if request.path.startswith("/v1/"):
            load_caller()

    @app.teardown_request
    def _close_session(_exc: BaseException | None) -> None:
        close_db()

    @app.get("/healthz")
    @documented({200: Health, 503: Health}, tag="platform", public=True)
    def healthz() -> tuple[Response, int]:
        """Liveness: the API answers and reaches its database."""
        from sqlalchemy import text

        status: dict[str, Any] = {"status": "ok"}
        try:
            with platform.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            status["database"] = "ok"
        except Exception as exc:
            return jsonify({"status": "degraded", "database": type(exc).__name__}), 503
        return jsonify(status), 200

    @app.get("/readyz")
    @documented({200: Readiness, 503: Readiness}, tag="platform", public=True)
    def readyz() -> tuple[Response, int]:
        """Readiness (storage.readiness): 503 naming what is down; /healthz stays liveness."""
        from storage.readiness import check_readiness

        checks = check_readiness(platform)
        down = sorted(name for name, answer in checks.items() if answer != "ok")
        body: dict[str, Any] = {
            "status": "unavailable" if down else "ok",
            "checks": checks,
            "down": down,
        }
        if checks.get("redis") == "ok":
            # Reported, not required: without serving workers only predictions and
            # validate_only reports answer 503; everything else works.
            body["serving_workers"] = _serving_workers()
        return jsonify(body), 503 if down else 200

    def _serving_workers() -> list[dict[str, Any]] | None:
        from api.serving import serving_client

        try:
            workers = serving_client(app).workers()
        except Exception:
            return None
        return [
            {"name": w.name, "queue_depth": w.queue_depth, "capacity": w.capacity,
             "models": len(w.models), "draining": w.draining}
            for w in workers
        ]  # fmt: skip

    after_writes.install(app)  # first, so that its hook runs after the two below
    guards.install(app)  # after authentication: rate limits per key, audit of changes
    idempotency.install(app)  # after rate limits: a replay is still a call
    app.register_blueprint(datasets_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(job_priority_bp)
    app.register_blueprint(models_bp)
    app.register_blueprint(model_jobs_bp)
    app.register_blueprint(alerts_bp)
    app.register_blueprint(teams_bp)
    app.register_blueprint(pool_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(events_stream_bp)
    app.register_blueprint(api_docs_bp)
    app.register_blueprint(ui_bp)
    app.register_blueprint(openai_compat_bp)
    app.register_blueprint(openai_files_bp)
    app.register_blueprint(openai_models_bp)
    app.register_blueprint(chat_completions_bp)
    app.register_blueprint(schedules_bp)
    return app
