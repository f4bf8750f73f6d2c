"""GET /openapi.json (OpenAPI 3.1) and GET /docs (a self-contained page, no CDN).

The document is built from the app itself: every rule of ``app.url_map`` becomes an
operation (so no route can be missing), and request bodies are the JSON Schemas of
the very pydantic models that validate those requests. pydantic emits JSON Schema
2020-12, which is the dialect of OpenAPI 3.1, so the schemas go in unchanged.
"""

from __future__ import annotations

import html
import importlib
import json
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from werkzeug.routing import Rule

from api.paging import MAX_ROW_ID

bp = Blueprint("openapi", __name__)

# endpoint -> the models ("module:Class") that validate its JSON body; several = oneOf.
REQUEST_BODIES: dict[str, list[str]] = {
    "jobs.submit": [
        "api.schemas:JobCreate",
        "api.schemas:InferenceJobCreate",
        "api.schemas:CompressJobCreate",
    ],
    "job_priority.edit": ["api.job_priority:JobEdit"],
    "models.put_alias": ["api.schemas:AliasUpdate"],
    "models.rollback_alias": ["api.schemas:AliasRollback"],
    "models.predict": ["api.schemas:PredictRequest"],
    "teams.create": ["api.teams:TeamCreate"],
    "teams.update": ["api.teams:TeamLimits"],
    "teams.new_key": ["api.teams:KeyCreate"],
}
# endpoint -> multipart fields (name -> description); "file" is the binary part.
MULTIPART: dict[str, dict[str, str]] = {
    "datasets.upload": {
        "file": "the data file (CoNLL, CSV/TSV, text or JSONL; chat JSONL for causal-lm)",
        "task": "token-classification, sequence-classification, masked-lm or causal-lm",
        "format": "conll, jsonl, csv, tsv, text; causal-lm: chat, openai, sharegpt, alpaca",
        "name": "a name for the dataset (default: the file's name)",
    },
    "openai_compat.upload_file": {
        "file": "fine-tuning data: chat JSONL, or CoNLL or JSONL token classification",
        "purpose": "fine-tune",
    },
}


def _whole(text: str, low: int, high: int) -> dict[str, Any]:
    """A query parameter read by api.paging.query_int: its schema says the same bounds."""
    return {"description": text, "schema": {"type": "integer", "minimum": low, "maximum": high}}


# endpoint -> query parameters (name -> description, or description and schema).
_PAGE: dict[str, Any] = {
    "limit": _whole("page size", 1, 500),
    "cursor": "the last id of the previous page",
}
_FOLLOW: dict[str, Any] = {
    "after": _whole("the last event id seen (the Last-Event-ID header wins)", 0, MAX_ROW_ID),
    "follow": "1 streams Server-Sent Events until the job is terminal",
    "limit": _whole("page size (without follow)", 1, 1000),
}
QUERY: dict[str, dict[str, Any]] = {
    "jobs.list_jobs": {**_PAGE, "state": "only jobs in this state"},
    "datasets.list_datasets": _PAGE,
    "jobs.events": _FOLLOW,
    "events_stream.logs": _FOLLOW,
    "schedules.list_schedules": _PAGE,
    "schedules.runs": _PAGE,
    "alerts.list_alerts": {
        "limit": _PAGE["limit"],
        "cursor": _whole("the last incident id of the previous page", 0, MAX_ROW_ID),
        "state": "open, resolved or all",
    },
    "openai_compat.list_jobs": {
        "limit": _whole("page size", 1, 100),
        "after": "the last job id seen",
    },
    "openai_compat.list_events": {
        "limit": _whole("page size", 1, 1000),
        "after": "the last event id seen (ftevent-<n>)",
    },
}
STREAMS = {"jobs.events", "events_stream.logs"}
PUBLIC_PREFIXES = ("/v1/",)
_CONVERTER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def _import(ref: str) -> type[BaseModel]:
    module, name = ref.split(":")
    model: type[BaseModel] = getattr(importlib.import_module(module), name)
    return model


def register_request_body(endpoint: str, *refs: str) -> None:
    """For blueprints added later (one line where the blueprint is defined)."""
    REQUEST_BODIES[endpoint] = list(refs)


def _schema_of(models: list[type[BaseModel]], components: dict[str, Any]) -> dict[str, Any]:
    refs = []
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        refs.append({"$ref": f"#/components/schemas/{model.__name__}"})
    return refs[0] if len(refs) == 1 else {"oneOf": refs}


def _operation(app: Flask, rule: Rule, method: str, components: dict[str, Any]) -> dict[str, Any]:
    view = app.view_functions[rule.endpoint]
    doc = (view.__doc__ or "").strip()
    summary = doc.splitlines()[0] if doc else rule.endpoint.replace("_", " ").replace(".", ": ")
    tag = rule.endpoint.split(".")[0] if "." in rule.endpoint else "platform"
    op: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": summary,
        "tags": [tag],
        "responses": {
            "200": {"description": "success", "content": {"application/json": {}}},
            "4XX": {
                "description": "an error naming the field and the problem",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if doc:
        op["description"] = doc
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if conv == "int" else "string"},
        }
        for conv, name in _CONVERTER.findall(rule.rule)
    ]
    if method == "GET":
        for name, about in QUERY.get(rule.endpoint, {}).items():
            if isinstance(about, str):
                about = {"description": about, "schema": {"type": "string"}}
            params.append({"name": name, "in": "query", "required": False, **about})
    if params:
        op["parameters"] = params
    if method in ("POST", "PUT", "PATCH") and rule.endpoint in REQUEST_BODIES:
        models = [_import(ref) for ref in REQUEST_BODIES[rule.endpoint]]
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_of(models, components)}},
        }
    if rule.endpoint in MULTIPART and method == "POST":
        fields = MULTIPART[rule.endpoint]
        op["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            name: (
                                {"type": "string", "format": "binary", "description": text}
                                if name == "file"
                                else {"type": "string", "description": text}
                            )
                            for name, text in fields.items()
                        },
                    }
                }
            },
        }
    if rule.endpoint in STREAMS:
        op["responses"]["200"]["content"]["text/event-stream"] = {}
    if rule.rule.startswith(PUBLIC_PREFIXES):
        op["security"] = [{"teamKey": []}]
    return op


def build_document(app: Flask) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "field": {"type": ["string", "null"]},
                    },
                }
            },
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        path = _CONVERTER.sub(lambda m: "{" + m.group(2) + "}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(app, rule, method, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tunepool",
            "version": "1",
            "description": "Teams share one GPU pool to fine-tune and serve transformer models. "
            "Send 'Authorization: Bearer <team API key>' on every /v1 request.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"teamKey": {"type": "http", "scheme": "bearer"}},
        },
    }


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(build_document(current_app))


@bp.get("/docs")
def docs() -> Response:
    """A readable listing of every operation, rendered here (works offline)."""
    doc = build_document(current_app)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tunepool API</title><style>",
        "body{font:14px system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}",
        "h2{border-bottom:1px solid #ddd;margin-top:2em}.op{margin:.6em 0;padding:.4em .6em;"
        "background:#f7f7f9;border-radius:4px}.m{display:inline-block;width:4.5em;font-weight:bold}"
        ".get{color:#0a6}.post{color:#06c}.put,.patch{color:#a60}.delete{color:#c00}"
        "pre{background:#fff;border:1px solid #eee;padding:.5em;overflow:auto;font-size:12px}",
        "</style></head><body><h1>tunepool API</h1>",
        f"<p>{html.escape(doc['info']['description'])} "
        "The machine-readable document is <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            by_tag.setdefault(op["tags"][0], []).append((path, method, op))
    for tag in sorted(by_tag):
        parts.append(f"<h2>{html.escape(tag)}</h2>")
        for path, method, op in by_tag[tag]:
            parts.append(
                f"<div class='op'><span class='m {method}'>{method.upper()}</span>"
                f"<code>{html.escape(path)}</code> — {html.escape(op['summary'])}"
            )
            body = op.get("requestBody", {}).get("content", {})
            for kind, content in body.items():
                schema = _resolve(content.get("schema", {}), doc["components"]["schemas"])
                parts.append(
                    f"<details><summary>{html.escape(kind)} body</summary><pre>"
                    f"{html.escape(json.dumps(schema, indent=2))}</pre></details>"
                )
            parts.append("</div>")
    parts.append("</body></html>")
    return Response("".join(parts), mimetype="text/html")


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> Any:
    ref = schema.get("$ref")
    if ref:
        return components[ref.rsplit("/", 1)[1]]
    if "oneOf" in schema:
        return {"oneOf": [_resolve(s, components) for s in schema["oneOf"]]}
    return schema
