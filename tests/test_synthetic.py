"""The demo's generated data: held-out names never appear in training sentences."""

from __future__ import annotations

from tunepool.synthetic import POOLS, conll_text


def _entity_words(text: str) -> set[str]:
    return {line.split("\t")[0] for line in text.splitlines() if line and not line.endswith("\tO")}


def test_heldout_names_are_unseen_in_training() -> None:
    train = _entity_words(conll_text(400, seed=1, split="train"))
    heldout = _entity_words(conll_text(100, seed=2, split="heldout"))
    first_words = {name.split()[0] for pool in POOLS.values() for name in pool[::3]}
    assert heldout & first_words
    assert not (train & first_words - {w for p in POOLS.values() for n in p[1::3] + p[2::3]
                                        for w in n.split()})
