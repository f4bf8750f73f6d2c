"""Label-balanced epochs for chat data whose answers are short labels.

Classification written as chat ("Is this spam or ham?" -> "ham") inherits the data's
skew: with 13 % spam, most steps teach the common answer and the model learns the rare
one slowly. Tempered sampling (as multilingual pre-training mixes languages) draws each
label's share of an epoch in proportion to ``count ** (1 - balance)``: 0 is the data's
own mix, 1 an equal share per label. The epoch keeps its size, so a step costs what it
did: rarer labels' examples repeat, commoner ones are a fresh subsample each epoch.
The draw is seeded by the epoch's seed, so a resumed run rebuilds the same epoch.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence


def label_shares(counts: dict[str, int], balance: float) -> dict[str, float]:
    weights = {label: count ** (1.0 - balance) for label, count in counts.items()}
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


def balanced_epoch(labels: Sequence[str], balance: float, seed: int) -> list[int]:
    """The example indices of one epoch (as many as there are examples), each label
    drawn to its tempered share; an index may repeat. ``balance`` 0: every index once."""
    size = len(labels)
    if balance <= 0 or size == 0:
        return list(range(size))
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    shares = label_shares({label: len(ix) for label, ix in by_label.items()}, balance)
    # Largest remainder: the quotas add up to the epoch's size exactly.
    exact = {label: share * size for label, share in shares.items()}
    quota = {label: int(value) for label, value in exact.items()}
    for label in sorted(exact, key=lambda lb: exact[lb] - quota[lb], reverse=True)[
        : size - sum(quota.values())
    ]:
        quota[label] += 1
    epoch: list[int] = []
    for label in sorted(by_label):
        members = by_label[label][:]
        rng.shuffle(members)
        whole, part = divmod(quota[label], len(members))
        epoch.extend(members * whole + members[:part])
    return epoch
