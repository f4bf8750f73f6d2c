"""Scoring greedy answers: labels and JSON entity lists."""

from __future__ import annotations

import pytest

from tunepool.data.chat import ChatExample, ChatMessage
from worker.training.causal_lm.evaluation import answer_kind, entity_f1, label_scores


def chat(answer: str) -> ChatExample:
    return ChatExample((ChatMessage("user", "q"), ChatMessage("assistant", answer)), 1, "openai")


def test_answer_kinds():
    assert answer_kind([chat("spam"), chat("ham")]) == "label"
    assert answer_kind([chat('[{"text":"Paris","type":"location"}]'), chat("[]")]) == "json"
    assert answer_kind([chat("He bought 8 boxes and lost $12 on them in total.")]) is None


def test_label_scores_per_class():
    predicted = ["spam", "Ham", "ham", "Spam.", "It is spam or ham"]
    scores = label_scores(predicted, ["spam", "ham", "spam", "spam", "ham"])
    # An answer naming exactly one label counts as it; naming both counts as neither.
    assert scores["accuracy"] == 3 / 5
    assert scores["f1_spam"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert scores["f1_ham"] == pytest.approx(2 * 1 / (2 * 1 + 1 + 1))


def test_entity_f1_counts_unparseable_answers_as_empty():
    gold = ['[{"text":"Paris","type":"location"}]', '[{"text":"Bob","type":"person"}]']
    predicted = ['[{"text":"Paris","type":"location"}]', "Bob is a person"]
    assert entity_f1(predicted, gold) == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))
