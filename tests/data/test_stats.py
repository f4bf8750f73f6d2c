"""Dataset statistics: counts, BIO problems, duplicates, lengths and truncation."""

from __future__ import annotations

import json

import pytest

from tunepool.data import TokenExample, token_dataset_stats
from worker.training.models import load_tokenizer, minilm_path

EXAMPLES = [
    TokenExample(["Ada", "Lovelace", "met", "Babbage"], ["B-PER", "I-PER", "O", "B-PER"], 1),
    TokenExample(["in", "London", "Town"], ["O", "O", "I-LOC"], 6),
    TokenExample(["Ada", "Lovelace", "met", "Babbage"], ["B-PER", "I-PER", "O", "O"], 10),
    TokenExample(["", "x"], ["O", "O"], 15),
]


def test_counts_labels_invalid_transitions_and_duplicates():
    stats = token_dataset_stats(EXAMPLES)
    assert stats["sentences"] == 4
    assert stats["tokens"] == 13
    # The stray I-LOC counts as an entity, as seqeval's default mode reads it.
    assert stats["entities"] == {"LOC": 1, "PER": 3}
    assert list(stats["labels"]) == ["O", "B-PER", "I-LOC", "I-PER"]
    assert stats["labels"]["O"] == 7
    assert stats["invalid_bio"] == {
        "count": 1,
        "examples": [{"line": 6, "token": 2, "tag": "I-LOC", "after": "O"}],
    }
    assert stats["duplicates"]["count"] == 1
    assert stats["duplicates"]["conflicting_tags"] == {"count": 1, "lines": [10]}
    assert stats["empty_tokens"] == {"count": 1, "lines": [15]}
    assert stats["sentence_length_words"]["histogram"] == {"1-8": 4}
    json.dumps(stats, allow_nan=False)


def test_word_piece_lengths_and_labelled_words_cut_by_max_length():
    tokenizer = load_tokenizer(str(minilm_path()))
    long = TokenExample(["word"] * 10 + ["Tunepoolification"], ["O"] * 10 + ["B-PRODUCT"], 1)
    stats = token_dataset_stats([long, EXAMPLES[0]], tokenizer=tokenizer, max_length=8)
    # [CLS] + 10 words + 3 pieces + [SEP]
    assert stats["sentence_length_pieces"]["max"] == 15
    # max_length 8 keeps pieces 1..6: words 6-9 and the entity word are cut.
    assert stats["truncation"] == {
        "max_length": 8,
        "words_cut": 5,
        "labelled_words_cut": 1,
        "lines": [1],
    }
    json.dumps(stats, allow_nan=False)


@pytest.mark.parametrize("max_length", [None, 512])
def test_nothing_is_cut_when_sentences_fit(max_length):
    tokenizer = load_tokenizer(str(minilm_path()))
    stats = token_dataset_stats(EXAMPLES, tokenizer=tokenizer, max_length=max_length)
    assert stats.get("truncation", {}).get("words_cut", 0) == 0
    # The empty token produces no word piece.
    assert stats["words_without_pieces"] == 1


def test_data_package_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = (
        "import sys, tunepool.data; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "sys.exit(', '.join(bad) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
