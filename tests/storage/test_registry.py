"""Registry: references resolve within a team; aliases move, keep a history and roll back."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.db import transaction
from storage.models import ModelVersion
from storage.registry import (
    alias_history,
    aliases,
    next_version,
    parse_ref,
    resolve,
    rollback,
    set_alias,
)
from storage.teams import create_team


def _setup(sessions: sessionmaker[Session]) -> tuple[str, str]:
    with transaction(sessions) as s:
        alpha, _ = create_team(s, "alpha")
        beta, _ = create_team(s, "beta")
        s.flush()
        for v in (1, 2, 3):
            s.add(
                ModelVersion(
                    team_id=alpha.id,
                    name="ner",
                    version=v,
                    task="token-classification",
                    prefix=f"teams/{alpha.id}/models/ner/{v}/",
                    base_model="tiny",
                )
            )
        return alpha.id, beta.id


def test_references_resolve_and_unknown_ones_are_lookup_errors(
    sessions: sessionmaker[Session],
) -> None:
    alpha, beta = _setup(sessions)
    with transaction(sessions) as s:
        assert resolve(s, alpha, "ner").version == 3
        assert resolve(s, alpha, "ner:2").version == 2
        assert next_version(s, alpha, "ner") == 4
        set_alias(s, alpha, "ner", "production", 1, reason="first", actor="key_1")
        assert resolve(s, alpha, "ner@production").version == 1
        with pytest.raises(LookupError, match="no alias 'staging'"):
            resolve(s, alpha, "ner@staging")
        with pytest.raises(LookupError, match="no version 9"):
            resolve(s, alpha, "ner:9")
        with pytest.raises(LookupError, match="model other not found"):
            resolve(s, alpha, "other")
        # Another team's model is simply not found.
        for ref in ("ner", "ner:1", "ner@production"):
            with pytest.raises(LookupError, match="model ner not found"):
                resolve(s, beta, ref)
        with pytest.raises(LookupError):
            set_alias(s, alpha, "ner", "production", 7, reason="", actor="")
    for bad in ("ner:x", "ner:0", "ner@", "ner@1a", "../x", ""):
        with pytest.raises(ValueError):
            parse_ref(bad)


def test_alias_moves_and_rolls_back_with_history(sessions: sessionmaker[Session]) -> None:
    alpha, _ = _setup(sessions)
    with transaction(sessions) as s:
        with pytest.raises(LookupError):
            rollback(s, alpha, "ner", "production", reason="", actor="")
        set_alias(s, alpha, "ner", "production", 1, reason="launch", actor="key_a")
        with pytest.raises(LookupError, match="no earlier version"):
            rollback(s, alpha, "ner", "production", reason="", actor="")
        set_alias(s, alpha, "ner", "production", 2, reason="better f1", actor="key_a")
        set_alias(s, alpha, "ner", "production", 3, reason="newer", actor="key_b")
        set_alias(s, alpha, "ner", "staging", 3, reason="try", actor="key_b")
        assert aliases(s, alpha, "ner") == {"production": 3, "staging": 3}

        event = rollback(s, alpha, "ner", "production", reason="regression", actor="key_c")
        assert (event.kind, event.old_version, event.new_version) == ("rollback", 3, 2)
        assert resolve(s, alpha, "ner@production").version == 2
        # A second rollback keeps walking back rather than toggling to 3.
        rollback(s, alpha, "ner", "production", reason="still bad", actor="key_c")
        assert aliases(s, alpha, "ner") == {"production": 1, "staging": 3}
        with pytest.raises(LookupError):
            rollback(s, alpha, "ner", "production", reason="", actor="")

    with sessions() as s:
        history = alias_history(s, alpha, "ner", "production")
        moves = [(e.kind, e.old_version, e.new_version, e.reason, e.actor) for e in history]
        assert moves == [
            ("set", None, 1, "launch", "key_a"),
            ("set", 1, 2, "better f1", "key_a"),
            ("set", 2, 3, "newer", "key_b"),
            ("rollback", 3, 2, "regression", "key_c"),
            ("rollback", 2, 1, "still bad", "key_c"),
        ]
        assert len(alias_history(s, alpha, "ner")) == 6
