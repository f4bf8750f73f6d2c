"""The base_model rule: allow-listed names, the team's own registry models, nothing else."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session, sessionmaker

from commands.embedded import child_env
from storage import base_models
from storage.base_models import BaseModelRefused, Listed, Noop
from storage.models import ModelVersion
from storage.registry import ModelRef
from storage.teams import create_team
from tunepool.settings import Settings


def test_allow_listed_names_and_registry_references_are_told_apart_without_sql() -> None:
    settings = Settings(base_models={"legal-bert": "/models/legal-bert", "org/bert": "org/bert"})
    assert base_models.classify("minilm", settings) == Listed("minilm", "builtin:minilm")
    assert base_models.classify("legal-bert", settings) == Listed(
        "legal-bert", "/models/legal-bert"
    )
    assert base_models.classify("org/bert", settings) == Listed("org/bert", "org/bert")
    assert base_models.classify("ner", settings) == ModelRef("ner")
    assert base_models.classify("ner:2", settings) == ModelRef("ner", version=2)
    assert base_models.classify("ner@production", settings) == ModelRef("ner", alias="production")
    assert base_models.classify("ft:ner:2", settings) == ModelRef("ner", version=2)


@pytest.mark.parametrize(
    "name",
    [
        "/srv/tunepool/objects/teams/team_a/models/ner/1",
        "file:///srv/objects/teams/team_a/models/ner/1/",
        "teams/team_a/models/ner/1/",
        "../ner",
        "ner/..",
        "https://huggingface.co/bert-base-cased",
        "s3://bucket/teams/team_a/models/ner/1/",
        "bert-base-cased/",
        "noop:succeed",
        "ft:",
        "ner:0",
        "ner@",
        " ner",
    ],
)
def test_paths_urls_keys_and_malformed_names_are_refused_with_what_is_allowed(name: str) -> None:
    settings = Settings(base_models={"legal-bert": "/models/legal-bert"})
    with pytest.raises(BaseModelRefused) as refused:
        base_models.classify(name, settings)
    message = str(refused.value)
    for allowed in ("all-MiniLM-L6-v2", "legal-bert", "name:version", "name@alias", "ft:"):
        assert allowed in message
    assert "/models/legal-bert" not in message  # names are listed, not the operator's paths


def test_noop_names_only_where_the_settings_allow_them() -> None:
    assert base_models.classify("noop:sleep=1", Settings(allow_noop_engine=True)) == Noop("sleep=1")


def test_registry_references_resolve_within_the_callers_team_only(
    sessions: sessionmaker[Session],
) -> None:
    settings = Settings()
    with sessions() as session:
        mine, _ = create_team(session, "mine")
        theirs, _ = create_team(session, "theirs")
        session.add(
            ModelVersion(
                team_id=theirs.id,
                name="secret",
                version=1,
                task="token-classification",
                prefix=f"teams/{theirs.id}/models/secret/1/",
                base_model="minilm",
            )
        )
        session.commit()
        found = base_models.resolve(session, theirs.id, "ft:secret:1", settings)
        assert isinstance(found, ModelVersion) and found.name == "secret"
        for name in ("secret", "secret:1", "ft:secret:1", "secret@production", "gpt-4o-mini"):
            with pytest.raises(BaseModelRefused, match=r"not found|no alias"):
                base_models.resolve(session, mine.id, name, settings)
        assert base_models.resolve(session, mine.id, "minilm", settings) == Listed(
            "minilm", "builtin:minilm"
        )


def test_the_operator_sets_the_allow_list_in_the_environment_and_children_inherit_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TUNEPOOL_BASE_MODELS", json.dumps({"legal-bert": "/models/legal-bert"}))
    settings = Settings()
    assert settings.allowed_base_models["legal-bert"] == "/models/legal-bert"
    assert "all-MiniLM-L6-v2" in settings.allowed_base_models  # added to, not replaced
    monkeypatch.delenv("TUNEPOOL_BASE_MODELS")
    env = child_env(Settings(base_models={"tiny": "/tmp/tiny"}))
    assert json.loads(env["TUNEPOOL_BASE_MODELS"]) == {"tiny": "/tmp/tiny"}
    with pytest.raises(ValueError, match="name and a source"):
        Settings(base_models={"blank": " "})


def test_the_builtin_chat_model_is_listed_under_its_name_and_hub_id() -> None:
    settings = Settings()
    for name in ("SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        listed = base_models.classify(name, settings)
        assert listed == Listed(name, "builtin:smollm2")
        assert isinstance(listed, Listed)
        assert base_models.task_mismatch(listed, "causal-lm") is None
        assert "chat model" in str(base_models.task_mismatch(listed, "token-classification"))
    minilm = base_models.classify("all-MiniLM-L6-v2", settings)
    assert isinstance(minilm, Listed)
    assert "encoder" in str(base_models.task_mismatch(minilm, "causal-lm"))
    assert base_models.task_mismatch(minilm, "sequence-classification") is None
    # An operator's source may be anything: the operator decides what it fits.
    assert base_models.task_mismatch(Listed("mine", "/models/llama"), "causal-lm") is None
