"""Predictions on words the caller already split (issue 20, item 15): one label per given
word, entity spans that index those words, never a re-split by the model's pre-tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inference.tiny import NER_LABELS, tiny_model_dir
from tunepool.data.token_files import TokenExample
from worker.inference.evaluate import entity_f1
from worker.inference.model import load_model
from worker.inference.predict import predict

# Each of these is one word to the caller and several to BERT's pre-tokenizer.
WORDS = ["Ola", "e-mail", "Zürich,", "don't", "New York", "U.S.A.", "Kristiansand"]


def test_labels_align_one_to_one_with_the_given_words(ner_dir: Path) -> None:
    loaded = load_model(ner_dir)  # predicts B-LOC everywhere
    assert len(loaded.tokenizer.tokenize(" ".join(WORDS))) > len(WORDS) + 5
    (result,) = predict(loaded, [WORDS])
    assert result["labels"] == ["B-LOC"] * len(WORDS)
    assert len(result["scores"]) == len(WORDS)
    # Every entity is a slice of the given words, and each word is one entity of its own.
    assert [(e["start"], e["end"]) for e in result["entities"]] == [
        (i, i + 1) for i in range(len(WORDS))
    ]
    assert [e["text"] for e in result["entities"]] == WORDS


def test_texts_and_words_mix_in_one_batch_in_order(ner_dir: Path) -> None:
    loaded = load_model(ner_dir)
    inputs: list[str | list[str]] = ["Ola e-mail", WORDS, "x", ["y"]]
    results = predict(loaded, inputs, batch_size=3)
    assert "labels" not in results[0] and "labels" not in results[2]
    assert [e["text"] for e in results[0]["entities"]] == ["Ola", "e", "-", "mail"]
    assert len(results[1]["labels"]) == len(WORDS)
    assert results[3]["labels"] == ["B-LOC"]


def test_words_beyond_the_model_length_still_get_a_label(ner_dir: Path) -> None:
    loaded = load_model(ner_dir)
    loaded.max_length = 8  # [CLS] + 6 pieces + [SEP]
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "\u200b"]
    (result,) = predict(loaded, [words])
    assert len(result["labels"]) == len(words)
    assert result["labels"][:6] == ["B-LOC"] * 6
    # Cut off (or no piece at all): "O", as the training engine's evaluation counts it.
    assert result["labels"][6:] == ["O", "O", "O"]


def test_entity_f1_scores_the_gold_words_themselves(tmp_path: Path) -> None:
    # A model that says B-PER for every word is exactly right when every gold word is
    # B-PER, however its pre-tokenizer would split the words.
    loaded = load_model(tiny_model_dir(tmp_path, NER_LABELS, bias_to="B-PER"))
    examples = [TokenExample(WORDS, ["B-PER"] * len(WORDS), 1)]
    assert entity_f1(loaded, examples)["f1"] == pytest.approx(1.0)


def test_a_sequence_classifier_reads_words_as_their_text(cls_dir: Path) -> None:
    loaded = load_model(cls_dir)
    as_words, as_text = predict(loaded, [["a", "fine", "day"], "a fine day"])
    assert as_words == as_text
