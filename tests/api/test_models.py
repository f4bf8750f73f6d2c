"""/v1/models: registry, aliases, downloads, online predictions and team isolation."""

from __future__ import annotations

import io
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from storage.platform import Platform
from tests.api.conftest import KeyFactory
from tests.api.models_helpers import publish_version
from tests.inference.tiny import CLASS_LABELS, NER_LABELS, tiny_model_dir
from tests.serving_process import ServingProcess


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("ner"), NER_LABELS, bias_to="B-PER")


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("cls"), CLASS_LABELS, task="sequence")


def test_versions_aliases_move_and_roll_back(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, ner_dir: Path
) -> None:
    alpha = make_key("alpha")
    lineage = {"train_dataset": "ds_1", "datasets": {"ds_1": "ab" * 32}, "hyperparameters": {}}
    publish_version(platform, "alpha", "ner", ner_dir, lineage=lineage, metrics={"f1": 0.5})
    publish_version(platform, "alpha", "ner", ner_dir, metrics={"f1": 0.6})

    models = client.get("/v1/models", headers=alpha).get_json()["data"]
    own = [m for m in models if m["kind"] == "fine-tuned"]  # the base models follow
    assert [(m["name"], m["latest_version"], m["versions"]) for m in own] == [("ner", 2, 2)]
    assert own[0]["id"] == "ner:2" and own[0]["object"] == "model"
    versions = client.get("/v1/models/ner/versions", headers=alpha).get_json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[1]["lineage"]["datasets"] == {"ds_1": "ab" * 32}
    assert versions[1]["lineage"]["metrics"] == {"f1": 0.5}

    put = lambda v: client.put(  # noqa: E731
        "/v1/models/ner/aliases/production", headers=alpha, json={"version": v, "reason": "r"}
    )
    assert put(1).status_code == 200
    moved = put(2).get_json()
    assert (moved["old_version"], moved["new_version"], moved["kind"]) == (1, 2, "set")
    assert client.get("/v1/models/ner", headers=alpha).get_json()["aliases"] == {"production": 2}
    assert client.get("/v1/models/ner/versions/2", headers=alpha).get_json()["aliases"] == [
        "production"
    ]

    back = client.post("/v1/models/ner/aliases/production/rollback", headers=alpha, json={})
    assert back.status_code == 200
    assert (back.get_json()["old_version"], back.get_json()["new_version"]) == (2, 1)
    assert client.get("/v1/models/ner", headers=alpha).get_json()["aliases"] == {"production": 1}
    history = client.get("/v1/models/ner/aliases/production/history", headers=alpha).get_json()
    assert [(e["kind"], e["new_version"]) for e in history["data"]] == [
        ("set", 1),
        ("set", 2),
        ("rollback", 1),
    ]
    assert put(9).status_code == 404
    assert put("two").status_code == 422
    bad_alias = client.put("/v1/models/ner/aliases/9lives", headers=alpha, json={"version": 1})
    assert bad_alias.status_code == 422
    gone = client.post("/v1/models/ner/aliases/production/rollback", headers=alpha, json={})
    assert gone.status_code == 404  # nothing earlier to go back to


def test_download_is_a_tar_of_the_hugging_face_files(
    client: FlaskClient, make_key: KeyFactory, platform: Platform, ner_dir: Path
) -> None:
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "ner", ner_dir)
    resp = client.get("/v1/models/ner:1/download", headers=alpha)
    assert resp.status_code == 200 and resp.mimetype == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(resp.data)) as tar:
        names = {m.name: m for m in tar.getmembers()}
        assert "ner-v1/config.json" in names and "ner-v1/model.safetensors" in names
        payload = tar.extractfile(names["ner-v1/model.safetensors"])
        assert payload is not None
        assert payload.read() == (ner_dir / "model.safetensors").read_bytes()


def test_predictions_for_ner_and_classification(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
    cls_dir: Path,
) -> None:
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "ner", ner_dir)
    publish_version(platform, "alpha", "sentiment", cls_dir, task="sequence-classification")
    client.put("/v1/models/ner/aliases/production", headers=alpha, json={"version": 1})
    text = "Åse Kristiansand-Ødegård  møtte Ola"
    resp = client.post("/v1/models/ner@production/predict", headers=alpha, json={"inputs": [text]})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["model"]["version"] == 1
    (prediction,) = body["predictions"]
    # Every word is tagged B-PER: one entity per word, each naming its exact characters.
    assert [e["text"] for e in prediction["entities"]] == [
        "Åse",
        "Kristiansand",
        "-",
        "Ødegård",
        "møtte",
        "Ola",
    ]
    for entity in prediction["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
    resp = client.post(
        "/v1/models/sentiment/predict", headers=alpha, json={"inputs": ["good", "bad stuff"]}
    )
    for prediction in resp.get_json()["predictions"]:
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
        assert prediction["label"] in CLASS_LABELS


def test_unknown_models_are_404_and_malformed_inputs_422(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
) -> None:
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "ner", ner_dir)
    ok = {"inputs": ["hello"]}
    for ref in ("nope", "ner@production", "ner:7", "nope@staging"):
        resp = client.post(f"/v1/models/{ref}/predict", headers=alpha, json=ok)
        assert resp.status_code == 404, ref
        assert resp.get_json()["error"]["code"] == "not_found"
    assert client.get("/v1/models/nope", headers=alpha).status_code == 404
    assert client.get("/v1/models/ner:7/download", headers=alpha).status_code == 404
    assert client.post("/v1/models/ner:x/predict", headers=alpha, json=ok).status_code == 422
    bodies: list[dict[str, Any]] = [
        {},
        {"inputs": "hello"},
        {"inputs": []},
        {"inputs": [1, 2]},
        {"inputs": ["ok", None]},
        {"inputs": ["x" * 20_001]},
        {"inputs": ["a"] * 257},
        {"inputs": ["a"], "extra": 1},
    ]
    for body in bodies:
        resp = client.post("/v1/models/ner/predict", headers=alpha, json=body)
        assert resp.status_code == 422, body
        assert resp.get_json()["error"]["code"] == "invalid"


def test_one_team_cannot_see_or_call_another_teams_model(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
) -> None:
    alpha, beta = make_key("alpha"), make_key("beta")
    publish_version(platform, "alpha", "ner", ner_dir)
    assert (
        client.put("/v1/models/ner/aliases/prod", headers=alpha, json={"version": 1}).status_code
        == 200
    )
    listed = client.get("/v1/models", headers=beta).get_json()["data"]
    assert [m["id"] for m in listed if m["owned_by"] != "tunepool"] == []
    for path in ("/v1/models/ner", "/v1/models/ner/versions", "/v1/models/ner/versions/1",
                 "/v1/models/ner:1/download", "/v1/models/ner/aliases/prod/history"):  # fmt: skip
        assert client.get(path, headers=beta).status_code == 404, path
    calls = [
        client.post("/v1/models/ner@prod/predict", headers=beta, json={"inputs": ["x"]}),
        client.put("/v1/models/ner/aliases/prod", headers=beta, json={"version": 1}),
        client.post("/v1/models/ner/aliases/prod/rollback", headers=beta, json={}),
    ]
    assert [c.status_code for c in calls] == [404, 404, 404]
    # The same name in beta's own registry is beta's model, not alpha's.
    publish_version(platform, "beta", "ner", ner_dir)
    mine = client.get("/v1/models/ner", headers=beta).get_json()
    assert mine["aliases"] == {} and mine["versions"] == 1


def test_concurrent_requests_share_forward_passes_and_wait_for_the_load(
    app: Flask, make_key: KeyFactory, platform: Platform, serving: ServingProcess, ner_dir: Path
) -> None:
    alpha = make_key("alpha")
    mv = publish_version(platform, "alpha", "ner", ner_dir)
    texts = [f"Request number {i} from Tromsø" + " ok" * (i % 5) for i in range(32)]

    def call(text: str) -> tuple[int, Any]:
        resp = app.test_client().post(
            "/v1/models/ner:1/predict", headers=alpha, json={"inputs": [text]}
        )
        return resp.status_code, resp.get_json()

    # The model is not loaded yet: all 32 wait for one load, then share passes.
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(call, texts))
    assert [status for status, _ in results] == [200] * 32
    for text, (_, body) in zip(texts, results, strict=True):
        words = [e["text"] for e in body["predictions"][0]["entities"]]
        assert words == text.split()  # each answer belongs to its own request
    # The serving worker's advert tells what it served (refreshed at each beat).
    deadline = time.monotonic() + 10
    while serving.model_stats(mv.id).get("requests", 0) < 32 and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = serving.model_stats(mv.id)
    assert stats["requests"] == 32
    assert stats["forward_passes"] < 32, stats
    assert stats["loads"] == 1


def test_readiness_lists_the_serving_workers(client: FlaskClient, serving: ServingProcess) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    workers = {w["name"]: w for w in ready.get_json()["serving_workers"]}
    assert workers[serving.name]["capacity"] == 256 and not workers[serving.name]["draining"]
