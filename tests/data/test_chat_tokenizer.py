"""The API's torch-free chat tokenizer counts exactly what the engine trains on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.causal_lm_fixtures import colour_chats, write_chats
from tunepool.data.chat import read_chat_examples
from tunepool.data.chat_tokenizer import load_chat_tokenizer
from worker.training.causal_lm.rendering import encode_chat


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from worker.training.causal_lm.base_models import make_tiny_llama_dir

    return make_tiny_llama_dir(tmp_path_factory.mktemp("tiny") / "llama")


def test_rendering_ids_and_labels_match_transformers(tiny_llama: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    rows = colour_chats(20, seed=3)
    rows.append(
        {
            "messages": [
                {"role": "system", "content": "Be brief. Ünïcode, «quotes» and emoji 🎈."},
                {"role": "user", "content": "First?"},
                {"role": "assistant", "content": "one", "weight": 0},
                {"role": "user", "content": "Second?\n  indented"},
                {"role": "assistant", "content": "two <|im_end|> inside"},
            ]
        }
    )
    examples = read_chat_examples(write_chats(tmp_path / "chats.jsonl", rows)).examples
    reference = AutoTokenizer.from_pretrained(tiny_llama)
    ours = load_chat_tokenizer(str(tiny_llama))
    assert ours is not None and ours.eos_token == reference.eos_token
    for example in examples:
        assert encode_chat(ours, example, 64) == encode_chat(reference, example, 64)


def test_a_directory_without_tokenizer_or_template_gives_none(tmp_path: Path) -> None:
    assert load_chat_tokenizer(str(tmp_path)) is None
