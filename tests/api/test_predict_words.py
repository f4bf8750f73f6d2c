"""Online predictions on pre-tokenized text (issue 20, item 15): an input may be a list of
words; a token classifier answers one label per given word, spans index those words."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from storage.platform import Platform
from tests.api.conftest import KeyFactory
from tests.api.models_helpers import publish_version
from tests.inference.tiny import CLASS_LABELS, NER_LABELS, tiny_model_dir
from tests.serving_process import ServingProcess

WORDS = ["Åse", "Kristiansand-Ødegård", "e-mail", "New York", "don't", "U.S.A."]


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("ner"), NER_LABELS, bias_to="B-PER")


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(
        tmp_path_factory.mktemp("cls"), CLASS_LABELS, task="sequence", bias_to="neutral"
    )


def test_words_get_one_label_each_and_spans_over_the_given_words(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
) -> None:
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "ner", ner_dir)
    text = "Ola e-mail"
    resp = client.post(
        "/v1/models/ner/predict", headers=alpha, json={"inputs": [WORDS, text, ["ok"]]}
    )
    assert resp.status_code == 200, resp.get_json()
    as_words, as_text, single = resp.get_json()["predictions"]
    assert as_words["labels"] == ["B-PER"] * len(WORDS)
    assert len(as_words["scores"]) == len(WORDS)
    for entity in as_words["entities"]:
        assert WORDS[entity["start"] : entity["end"]] == [entity["text"]]
    assert [e["text"] for e in as_words["entities"]] == WORDS
    # A text is still split by the model, with character spans.
    assert [e["text"] for e in as_text["entities"]] == ["Ola", "e", "-", "mail"]
    assert "labels" not in as_text
    assert single["labels"] == ["B-PER"]


def test_a_sequence_classifier_takes_words_too(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    cls_dir: Path,
) -> None:
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "mood", cls_dir, task="sequence-classification")
    resp = client.post("/v1/models/mood/predict", headers=alpha, json={"inputs": [WORDS]})
    assert resp.status_code == 200, resp.get_json()
    (prediction,) = resp.get_json()["predictions"]
    assert prediction["label"] == "neutral"


def test_malformed_word_lists_are_422(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
) -> None:
    alpha = make_key("alpha")
    publish_version(platform, "alpha", "ner", ner_dir)
    bodies: list[dict[str, Any]] = [
        {"inputs": [[]]},
        {"inputs": [["ok", ""]]},
        {"inputs": [["ok", 1]]},
        {"inputs": [["ok", None]]},
        {"inputs": [[["nested"]]]},
        {"inputs": [["w"] * 2_001]},
        {"inputs": [["x" * 1_000] * 21]},  # more characters than a text may hold
    ]
    for body in bodies:
        resp = client.post("/v1/models/ner/predict", headers=alpha, json=body)
        assert resp.status_code == 422, body
        assert resp.get_json()["error"]["field"].startswith("inputs"), resp.get_json()


def test_a_masked_lm_version_is_refused_with_a_422_naming_the_model(
    client: FlaskClient,
    make_key: KeyFactory,
    platform: Platform,
    serving: ServingProcess,
    ner_dir: Path,
) -> None:
    alpha = make_key("alpha")
    mlm = publish_version(platform, "alpha", "mlm", ner_dir, task="masked-lm")
    resp = client.post("/v1/models/mlm/predict", headers=alpha, json={"inputs": ["Ola"]})
    assert resp.status_code == 422, resp.get_json()
    error = resp.get_json()["error"]
    assert error["field"] == "model" and "masked-lm" in error["message"]
    # Refused before anything was sent: the serving worker never fetched or loaded it.
    time.sleep(0.5)  # past a heartbeat, which would show a load begun
    advert = serving.advert()
    assert advert is not None and not advert.holds(mlm.id)
