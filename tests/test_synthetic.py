"""The demo's generated data: held-out names never appear in training sentences."""

from __future__ import annotations

from tunepool.synthetic import POOLS, conll_text


def _as_conll(name: str, kind: str) -> str:
    parts = name.split()
    return "\n".join(f"{p}\t{'B' if i == 0 else 'I'}-{kind}" for i, p in enumerate(parts))


def test_heldout_names_are_unseen_in_training_and_used_for_validation() -> None:
    train = conll_text(400, seed=1, split="train")
    heldout = conll_text(100, seed=2, split="heldout")
    for kind, pool in POOLS.items():
        for name in pool[::3]:
            assert _as_conll(name, kind) + "\n" not in train, name
        assert any(_as_conll(name, kind) in heldout for name in pool[::3]), kind
