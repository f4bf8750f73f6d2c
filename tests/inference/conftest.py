"""Session-wide tiny model directories (building one takes about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inference.tiny import CLASS_LABELS, NER_LABELS, tiny_model_dir


@pytest.fixture(scope="session")
def ner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Predicts B-LOC for every token: every word is its own LOC entity."""
    return tiny_model_dir(tmp_path_factory.mktemp("ner"), NER_LABELS, bias_to="B-LOC")


@pytest.fixture(scope="session")
def cls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("cls"), CLASS_LABELS, task="sequence")
