"""Chat examples to token ids and labels, rendered by the model's own chat template.

The loss covers the assistant turns of weight 1 only: their content and the
end-of-turn token, so the model learns to stop. Which tokens those are is found
by rendering prefixes of the conversation as text (through turn i with and
without the assistant's reply) and taking the characters between; templates such
as SmolLM2's have no `{% generation %}` markers, so `return_assistant_tokens_mask`
cannot be used. The full text is tokenized once and character spans map to tokens
through the offsets, which stays right even when a token straddles a turn edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunepool.data.chat import ChatExample
from tunepool.data.errors import DataError

# The label of positions the loss ignores (PyTorch cross-entropy's ignore_index).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedChat:
    """One rendered conversation: `labels[t]` is `input_ids[t]` where trained, else -100."""

    input_ids: list[int]
    labels: list[int]
    line: int
    truncated: bool  # longer than max_length before truncation

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _render(tokenizer: Any, messages: list[dict[str, str]], prompt: bool) -> str:
    if not messages:
        return ""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
    return str(text)


def trained_spans(tokenizer: Any, example: ChatExample) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of its trained assistant turns."""
    messages = [{"role": m.role, "content": m.content} for m in example.messages]
    full = _render(tokenizer, messages, prompt=False)
    end_of_turn = tokenizer.eos_token or ""
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(example.messages):
        if message.role != "assistant" or message.weight != 1:
            continue
        before = _render(tokenizer, messages[:index], prompt=True)
        through = _render(tokenizer, messages[: index + 1], prompt=False)
        if not (through.startswith(before) and full.startswith(through)):
            # A template that rewrites earlier turns (e.g. drops old reasoning) has no
            # stable prefix; training on it would teach text the server never shows.
            raise DataError(
                "the model's chat template does not render this conversation turn by turn",
                example.line,
            )
        start, stop = len(before), len(through)
        # Keep content + end-of-turn token; what the template adds after it (a
        # newline) is formatting the model never has to produce.
        if end_of_turn:
            cut = full.rfind(end_of_turn, start, stop)
            if cut >= 0:
                stop = cut + len(end_of_turn)
        spans.append((start, stop))
    return full, spans


def encode_chat(tokenizer: Any, example: ChatExample, max_length: int) -> EncodedChat:
    """Token ids and labels of one conversation, cut to `max_length` tokens."""
    text, spans = trained_spans(tokenizer, example)
    # The template already wrote BOS/special tokens as text; adding more would double them.
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoding["input_ids"])
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for position, (start, stop) in enumerate(encoding["offset_mapping"]):
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1
        if span_index == len(spans):
            break
        span_start, span_stop = spans[span_index]
        if stop > start and start >= span_start and stop <= span_stop:
            labels[position] = ids[position]
    truncated = len(ids) > max_length
    return EncodedChat(ids[:max_length], labels[:max_length], example.line, truncated)
