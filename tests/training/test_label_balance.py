"""Label-balanced epochs: each label's share follows count ** (1 - balance), the epoch
keeps its size, and the same seed draws the same epoch (a resumed run relies on it)."""

from __future__ import annotations

from collections import Counter

import pytest

from tunepool.sft_hyperparameters import SFTHyperparameters, SFTSettingsError
from worker.training.causal_lm.balance import balanced_epoch, label_shares
from worker.training.causal_lm.batches import step_batches

LABELS = ["ham"] * 87 + ["spam"] * 13


def test_no_balance_is_every_example_once() -> None:
    assert balanced_epoch(LABELS, 0.0, seed=1) == list(range(100))


@pytest.mark.parametrize(("balance", "spam"), [(0.5, 28), (1.0, 50)])
def test_shares_follow_the_tempered_counts(balance: float, spam: int) -> None:
    epoch = balanced_epoch(LABELS, balance, seed=1)
    assert len(epoch) == len(LABELS)
    drawn = Counter(LABELS[i] for i in epoch)
    assert drawn["spam"] == spam and drawn["ham"] == 100 - spam
    assert round(label_shares({"ham": 87, "spam": 13}, balance)["spam"] * 100) == spam
    # Every rare example is used before any repeats; the common ones are not repeated.
    spam_drawn = Counter(i for i in epoch if LABELS[i] == "spam")
    assert len(spam_drawn) == 13 and max(spam_drawn.values()) - min(spam_drawn.values()) <= 1
    assert max(Counter(i for i in epoch if LABELS[i] == "ham").values()) == 1


def test_the_same_seed_draws_the_same_epoch_and_steps() -> None:
    lengths = [10 + i % 7 for i in range(100)]
    first = step_batches(balanced_epoch(LABELS, 0.5, 3), lengths, 8, 3, grouped=True)
    again = step_batches(balanced_epoch(LABELS, 0.5, 3), lengths, 8, 3, grouped=True)
    other = step_batches(balanced_epoch(LABELS, 0.5, 4), lengths, 8, 4, grouped=True)
    assert first == again and first != other
    assert sorted(i for step in first for i in step) == sorted(balanced_epoch(LABELS, 0.5, 3))


def test_label_balance_is_checked_when_set() -> None:
    assert SFTHyperparameters.from_dict({"label_balance": 0.5}).label_balance == 0.5
    for bad in (1.5, -0.1, "0.5", True):
        with pytest.raises(SFTSettingsError) as refused:
            SFTHyperparameters.from_dict({"label_balance": bad})
        assert refused.value.name == "label_balance"
