"""Entity-level scores punish wrong boundaries; token-level scores skip -100 positions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tunepool.data import TokenExample
from worker.training.evaluation import evaluate
from worker.training.metrics import entity_report, summary_metrics, token_report
from worker.training.token_classification import IGNORE_INDEX, EncodedSentence


def test_wrong_boundary_is_an_entity_error_even_with_most_tokens_right():
    truth = [["B-LOC", "I-LOC", "I-LOC", "O", "B-PER"]]
    predicted = [["B-LOC", "I-LOC", "O", "O", "B-PER"]]  # 4 of 5 tokens right
    entities = entity_report(truth, predicted)
    tokens = token_report(truth[0], predicted[0])
    assert tokens["accuracy"] == pytest.approx(0.8)
    assert entities["default"]["LOC"]["f1-score"] == 0.0
    assert entities["default"]["PER"]["f1-score"] == 1.0
    summary = summary_metrics(entities, tokens)
    assert summary["f1"] == pytest.approx(0.5)
    assert summary["precision"] == summary["recall"] == pytest.approx(0.5)


def test_wrong_type_is_an_error_and_macro_average_weighs_types_equally():
    truth = [["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-PER"]]
    predicted = [["B-PER", "O", "B-PER"], ["B-PER", "O", "B-PER"]]
    default = entity_report(truth, predicted)["default"]
    assert default["PER"]["precision"] == pytest.approx(3 / 4)
    assert default["PER"]["recall"] == 1.0
    assert default["LOC"]["recall"] == 0.0
    assert default["macro avg"]["f1-score"] == pytest.approx((6 / 7 + 0) / 2)
    assert default["micro avg"]["f1-score"] == pytest.approx(2 * 0.75 * 0.75 / 1.5)


def test_strict_mode_rejects_entities_that_start_with_i():
    truth = [["O", "B-PER", "I-PER"]]
    predicted = [["O", "I-PER", "I-PER"]]
    report = entity_report(truth, predicted)
    assert report["default"]["micro avg"]["f1-score"] == 1.0  # conlleval reads I- as a start
    assert report["strict_iob2"]["micro avg"]["f1-score"] == 0.0


def test_reports_without_entities_are_finite():
    report = entity_report([["O", "O"]], [["O", "O"]])
    assert all(v == v for row in report["strict_iob2"].values() for v in row.values())


class FixedPredictions(torch.nn.Module):
    """A stand-in model whose logits pick `predicted[row][position]`."""

    def __init__(self, predicted: list[list[int]], num_labels: int) -> None:
        super().__init__()
        self.predicted, self.num_labels = predicted, num_labels

    def forward(self, input_ids, attention_mask, labels):
        batch, width = input_ids.shape
        logits = torch.zeros(batch, width, self.num_labels)
        for row in range(batch):
            key = tuple(input_ids[row][attention_mask[row].bool()].tolist())
            for position, label in enumerate(self.predicted[key]):
                logits[row, position, label] = 1.0
        return SimpleNamespace(loss=torch.tensor(0.0), logits=logits)


def test_evaluation_scores_first_pieces_only_never_minus_100_positions():
    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    example = TokenExample(["Tunepoolification", "rocks"], ["B-PER", "O"], 1)
    ignore = IGNORE_INDEX
    # [CLS] tune ##pool ##ification rocks [SEP]
    sentence = EncodedSentence(
        [101, 1, 2, 3, 4, 102], [ignore, 1, ignore, ignore, 0, ignore], [-1, 0, -1, -1, 1, -1], 2
    )
    # Right on the first pieces, wrong (I-PER) on every -100 position.
    model = FixedPredictions({(101, 1, 2, 3, 4, 102): [2, 1, 2, 2, 0, 2]}, 3)
    metrics, report = evaluate(
        model, [example], [sentence], id2label, 8, pad_token_id=0, device=torch.device("cpu")
    )
    assert metrics["token_accuracy"] == 1.0
    assert "I-PER" not in report["token"]
    assert report["token"]["B-PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert metrics["f1"] == metrics["strict_f1"] == 1.0
