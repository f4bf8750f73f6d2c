"""Prompts as token ids: chat messages through the tokenizer's own chat template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[int, ...]:
    """The model's chat format, ending where the assistant's reply starts."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model's tokenizer has no chat template; use a text prompt")
    ids = tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return tuple(int(i) for i in ids)


def text_prompt_ids(tokenizer: Any, prompt: str) -> tuple[int, ...]:
    return tuple(int(i) for i in tokenizer(prompt)["input_ids"])
