"""The inference engine: entity offsets, classification probabilities, batching order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.inference.tiny import NER_LABELS, tiny_model_dir
from worker.inference.model import LoadedModel, load_model
from worker.inference.ner import group_entities, words_from_pieces
from worker.inference.predict import encode, predict

TEXT = "Ola Kristiansand visited Trøndelag, Zürich, naïve café 東京 🙂 ok"


def test_every_entity_points_at_its_word_in_the_original_string(ner_dir: Path) -> None:
    loaded = load_model(ner_dir)
    assert len(loaded.tokenizer.tokenize("Kristiansand")) > 1  # a multi-piece word
    assert len(loaded.tokenizer.tokenize("Trøndelag")) > 1  # non-ASCII and multi-piece
    texts = [TEXT, "", "  leading  spaces\tand\nnewlines  "]
    results = predict(loaded, texts, batch_size=2)
    assert len(results) == 3
    for text, result in zip(texts, results, strict=True):
        for entity in result["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert entity["type"] == "LOC" and 0 <= entity["score"] <= 1
    words = [e["text"] for e in results[0]["entities"]]
    # Pieces merge into whole words; punctuation and CJK characters are words of their own.
    assert words == [
        "Ola", "Kristiansand", "visited", "Trøndelag", ",", "Zürich", ",",
        "naïve", "café", "東", "京", "🙂", "ok",
    ]  # fmt: skip
    assert results[1] == {"entities": []}
    assert [e["text"] for e in results[2]["entities"]] == ["leading", "spaces", "and", "newlines"]


def _pieces(loaded: LoadedModel, text: str) -> Any:
    (encoding,) = encode(loaded, [text])
    return encoding


def test_first_piece_labels_the_word_and_bio_groups_words(ner_dir: Path) -> None:
    loaded = load_model(ner_dir)
    text = "Ola Kristiansand flew to Zürich"
    enc = _pieces(loaded, text)
    word_ids = enc.word_ids
    labels, scores = [], []
    for position, word in enumerate(word_ids):
        first = word is not None and (position == 0 or word_ids[position - 1] != word)
        tag = {0: "B-PER", 1: "I-PER", 4: "B-LOC"}.get(word, "O") if word is not None else "O"
        # Later pieces of a word say "O" or a clashing type: they must not split the word.
        labels.append(tag if first else ("O" if word == 1 else "B-PER"))
        scores.append(0.9 if first else 0.1)
    words = words_from_pieces(word_ids, enc.offsets, labels, scores)
    entities = group_entities(text, words)
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in entities] == [
        ("PER", "Ola Kristiansand", 0, 16),
        ("LOC", "Zürich", 25, 31),
    ]
    assert entities[0]["score"] == pytest.approx(0.9)


def test_inside_tag_after_another_type_starts_a_new_entity() -> None:
    from worker.inference.ner import Word

    words = [Word(0, 3, "I-PER", 1.0), Word(4, 8, "I-LOC", 0.5), Word(9, 12, "I-LOC", 0.7)]
    entities = group_entities("Ola Oslo Bod", words)
    assert [(e["type"], e["text"]) for e in entities] == [("PER", "Ola"), ("LOC", "Oslo Bod")]
    assert entities[1]["score"] == pytest.approx(0.6)


def test_one_entity_spans_inside_tags_across_words(tmp_path: Path) -> None:
    loaded = load_model(tiny_model_dir(tmp_path, NER_LABELS, bias_to="I-PER"))
    (result,) = predict(loaded, ["Åse Kristiansand-Ødegård"])
    assert result["entities"][0]["text"] == "Åse Kristiansand-Ødegård"
    assert len(result["entities"]) == 1


def test_classification_probabilities_sum_to_one(cls_dir: Path) -> None:
    loaded = load_model(cls_dir)
    texts = ["great", "", "a much longer input, with punctuation — and ümlauts", "bad"] * 5
    results = predict(loaded, texts, batch_size=3)
    assert len(results) == len(texts)
    for result in results:
        probabilities = result["probabilities"]
        assert set(probabilities) == {"negative", "neutral", "positive"}
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-9)
        assert result["label"] == max(probabilities, key=probabilities.__getitem__)
        assert result["score"] == probabilities[result["label"]]
    # Sorting by length inside predict must not reorder the answers.
    assert results[0] == results[4] and results[2] == results[6]
