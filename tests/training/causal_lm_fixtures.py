"""Shared pieces of the causal-LM engine tests: a tiny Llama and chat files."""

from __future__ import annotations

import json
import random
from pathlib import Path

COLOURS = ["red", "green", "blue", "yellow"]


def colour_chats(count: int, seed: int = 0) -> list[dict[str, object]]:
    """Short chats whose answer is a one-word label: learnable by a tiny model."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for _ in range(count):
        colour = rng.choice(COLOURS)
        question = f"Colour of {colour[::-1]} {'?' * rng.randint(1, 6)}"
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": colour},
        ]
        if rng.random() < 0.3:
            messages = [{"role": "system", "content": "Answer in one word."}, *messages]
        rows.append({"messages": messages})
    return rows


def write_chats(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
