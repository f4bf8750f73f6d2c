"""/openapi.json: a valid OpenAPI document covering every route, with the validating schemas."""

from __future__ import annotations

import inspect
import re

from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from api.schemas import JobCreate


def document(client: FlaskClient) -> dict:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    return dict(resp.get_json())


def test_the_document_validates(client: FlaskClient) -> None:
    validate(document(client))


def test_every_route_is_in_the_document(app: Flask, client: FlaskClient) -> None:
    paths = document(client)["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {rule.rule}")
    assert not missing, missing


def test_every_validated_json_body_has_its_schema(app: Flask, client: FlaskClient) -> None:
    """A view that validates a pydantic model must document a request body."""
    paths = document(client)["paths"]
    undocumented = []
    for rule in app.url_map.iter_rules():
        source = inspect.getsource(app.view_functions[rule.endpoint])
        if ".model_validate(" not in source and "submit_model_job" not in source:
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) & {"POST", "PUT", "PATCH"}:
            if "requestBody" not in paths[path][method.lower()]:
                undocumented.append(f"{method} {rule.rule}")
    assert not undocumented, undocumented


def test_request_schemas_are_the_validating_models(client: FlaskClient) -> None:
    doc = document(client)
    schemas = doc["components"]["schemas"]
    expected = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    expected.pop("$defs", None)
    assert schemas["JobCreate"] == expected
    body = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/JobCreate"} in body["schema"]["oneOf"]
    assert "security" in doc["paths"]["/v1/jobs"]["post"]
    assert "security" not in doc["paths"]["/metrics"]["get"]


def test_docs_page_lists_operations_without_external_assets(client: FlaskClient) -> None:
    resp = client.get("/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "/v1/jobs/{job_id}/events" in page and "train_dataset" in page
    assert not re.search(r"(src|href)=['\"]https?://", page)
