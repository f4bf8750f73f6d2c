"""Turn generated tokens into text as they come, and stop at stop strings.

Decoding token by token breaks words and multi-byte characters, so text is
decoded over a short window of earlier tokens and released only once it no
longer ends in an incomplete character (the offsets scheme of TGI and vLLM).
Text that could be the start of a stop string is held back until it cannot be,
so a client never sees part of a stop string.
"""

from __future__ import annotations

from typing import Any

# Earlier prompt tokens decoded with the first generated ones, so a leading space
# that belongs to the first word is not dropped by SentencePiece-style tokenizers.
_CONTEXT_TOKENS = 5


class TextAssembler:
    def __init__(self, tokenizer: Any, prompt_ids: tuple[int, ...], stop: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._ids = list(prompt_ids[-_CONTEXT_TOKENS:])
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self.text = ""
        self._released = 0
        self.stopped = False

    def add(self, token_id: int) -> str:
        """Text that may be shown now, after `token_id`; sets `stopped` at a stop string."""
        self._ids.append(token_id)
        self._append(self._decode_new(final=False))
        return self._release(self._safe_end())

    def finish(self) -> str:
        """The rest of the text once generation ended (held-back text included)."""
        if not self.stopped:
            self._append(self._decode_new(final=True))
        return self._release(len(self.text))

    def _decode_new(self, *, final: bool) -> str:
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full = self._decode(self._ids[self._prefix_offset :])
        if len(full) <= len(prefix) or (full.endswith("\ufffd") and not final):
            return ""  # the last token ends mid-character: wait for the rest of it
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return full[len(prefix) :]

    def _decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))

    def _append(self, new: str) -> None:
        if not new or self.stopped:
            return
        # Only the new text and the few characters before it can hold a new match.
        start = max(0, len(self.text) - max((len(s) for s in self._stop), default=0) + 1)
        self.text += new
        hits = [i for i in (self.text.find(s, start) for s in self._stop) if i >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def _safe_end(self) -> int:
        """End of the text that cannot be the start of a stop string."""
        if self.stopped:
            return len(self.text)
        for hold in range(min(len(self.text), max((len(s) for s in self._stop), default=0)), 0, -1):
            if any(s.startswith(self.text[-hold:]) for s in self._stop):
                return len(self.text) - hold
        return len(self.text)

    def _release(self, end: int) -> str:
        out, self._released = self.text[self._released : end], max(self._released, end)
        return out
