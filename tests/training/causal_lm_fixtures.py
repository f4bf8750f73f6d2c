"""Shared pieces of the causal-LM engine tests: a tiny Llama and chat files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

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


def store_chat_dataset(sessions: Any, store: Any, team_name: str, path: Path) -> str:
    """A stored chat dataset (task causal-lm, OpenAI chat JSONL) of ``team_name``, as an
    upload leaves it: the file in the object store with its checksum, and its row."""
    from sqlalchemy import select

    from storage.blobs import store_file
    from storage.db import transaction
    from storage.ids import new_id
    from storage.layout import dataset_key
    from storage.models import Dataset, Team

    with transaction(sessions) as session:
        team_id = session.scalar(select(Team.id).where(Team.name == team_name))
        assert team_id is not None, team_name
        dataset_id = new_id("ds")
        stored = store_file(session, store, dataset_key(team_id, dataset_id, "jsonl"), path)
        session.add(
            Dataset(
                id=dataset_id,
                team_id=team_id,
                name=path.stem,
                task="causal-lm",
                format="jsonl",
                object_key=stored.key,
                size=stored.size,
                sha256=stored.sha256,
                stats={"examples": sum(1 for line in path.open() if line.strip())},
                status="ready",
            )
        )
    return dataset_id
