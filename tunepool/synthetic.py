"""Seeded synthetic NER sentences, for the demo and tests (a fresh machine has no shared data).

The entities are multi-word and mixed-case so that word-piece alignment and
entity boundaries matter; the templates give context words that a model can learn.
"""

from __future__ import annotations

import random

PEOPLE = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Marie Curie",
    "Linus",
    "Katherine Johnson",
    "Tim Berners-Lee",
    "Barbara Liskov",
    "Edsger Dijkstra",
    "Frances Allen",
    "Dennis Ritchie",
    "Margaret Hamilton",
    "Claude Shannon",
    "Hedy Lamarr",
    "John McCarthy",
    "Radia Perlman",
]
PLACES = [
    "Paris",
    "Lagos",
    "New York",
    "Kyoto",
    "Buenos Aires",
    "Oslo",
    "Cape Town",
    "Reykjavik",
    "San Francisco",
    "Mumbai",
    "Helsinki",
    "Rio de Janeiro",
    "Nairobi",
    "Vancouver",
    "Zurich",
]
ORGS = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Labs",
    "Stark Industries",
    "Wayne Enterprises",
    "Tyrell Corporation",
    "Cyberdyne Systems",
    "Hooli",
    "Pied Piper",
    "Vandelay Industries",
]
TEMPLATES = [
    "{PER} moved to {LOC} to join {ORG} .",
    "Yesterday {PER} met {PER} in {LOC} .",
    "{ORG} opened a new office in {LOC} last week .",
    "According to {PER} , {ORG} will hire more engineers .",
    "The conference in {LOC} was sponsored by {ORG} .",
    "{PER} left {ORG} after ten years .",
    "Flights from {LOC} to {LOC} were cancelled on Monday .",
    "{ORG} and {ORG} announced a merger .",
    "We asked {PER} about the weather in {LOC} .",
    "Nobody expected the results to arrive so early .",
]
POOLS = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}


def _names(kind: str, split: str) -> list[str]:
    """Every third name is held out of training, so evaluation measures whether the model
    learned the contexts and not only the names it has seen."""
    pool = POOLS[kind]
    if split == "all":
        return pool
    held_out = pool[::3]
    return held_out if split == "heldout" else [n for n in pool if n not in held_out]


def sentence(rng: random.Random, split: str = "all") -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    tags: list[str] = []
    for word in rng.choice(TEMPLATES).split():
        if word.startswith("{") and word.endswith("}"):
            kind = word[1:-1]
            for i, part in enumerate(rng.choice(_names(kind, split)).split()):
                tokens.append(part)
                tags.append(("B-" if i == 0 else "I-") + kind)
        else:
            tokens.append(word)
            tags.append("O")
    return tokens, tags


def conll_text(n: int, seed: int = 0, split: str = "all") -> str:
    """n sentences in CoNLL format (token TAB tag, blank line between sentences).

    split: "all" names, "train" (two thirds of them) or "heldout" (the other third).
    """
    rng = random.Random(seed)
    blocks = []
    for _ in range(n):
        tokens, tags = sentence(rng, split)
        blocks.append("\n".join(f"{t}\t{g}" for t, g in zip(tokens, tags, strict=True)))
    return "\n\n".join(blocks) + "\n"
