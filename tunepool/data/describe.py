"""An uploaded file's description: parse every example and summarise it in one pass.

Used twice: by the API at upload without a tokenizer (format, labels and findings,
each problem named by its line), and by a worker afterwards with the default base
model's tokenizer, which adds the word-piece statistics of token-classification data
(the API loads no tokenizer). Memory stays bounded whatever the file's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunepool.data.chat_upload import chat_upload_stats
from tunepool.data.errors import DataError
from tunepool.data.findings import findings_in_file
from tunepool.data.stats import token_dataset_stats
from tunepool.data.text_files import iter_text_documents, iter_text_examples
from tunepool.data.text_stats import corpus_stats, text_dataset_stats
from tunepool.data.token_files import iter_token_examples

# Word pieces are counted at the default base model's default max length; a job's
# validate_only report recounts with the job's own model and settings.
PIECES_MAX_LENGTH = 128


def describe_file(path: Path, task: str, fmt: str, tokenizer: Any = None) -> dict[str, Any]:
    """Statistics of the file; DataError (naming the line) if it is malformed or empty."""
    stats: dict[str, Any]
    if task == "sequence-classification":
        stats = text_dataset_stats(iter_text_examples(path, fmt))
        counted, nothing = stats["examples"], "the file holds no examples"
    elif task == "causal-lm":
        # Tokens approximated from characters; a worker counts them with the chat
        # model's tokenizer (worker.chat_dataset_check).
        stats = chat_upload_stats(path, fmt)
        counted, nothing = stats["examples"], "the file holds no conversations"
    elif task == "masked-lm":
        stats = corpus_stats(iter_text_documents(path, fmt))
        counted, nothing = stats["documents"], "the file holds no documents"
    else:
        max_length = PIECES_MAX_LENGTH if tokenizer is not None else None
        stats = token_dataset_stats(iter_token_examples(path, fmt), tokenizer, max_length)
        counted, nothing = stats["sentences"], "the file holds no sentences"
    if not counted:
        raise DataError(nothing)
    stats["file"] = findings_in_file(path)
    return stats


def needs_tokenizer(task: str) -> bool:
    """Whether a worker adds anything to the upload's statistics of this task's data."""
    return task in ("token-classification", "causal-lm")
