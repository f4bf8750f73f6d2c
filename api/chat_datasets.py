"""Chat (``causal-lm``) data in the API: the upload report with its token counts.

An upload is checked line by line (``tunepool.data.chat_upload``): a bad role, empty
content or a conversation without an assistant turn is a 422 naming every line found
(the first ``MAX_EXAMPLES`` of each kind). Tool definitions and tool calls are left
out with the named warning ``tools_ignored``. Tokens are counted with the chat model's
own tokenizer and template through the ``tokenizers`` library (never transformers):
the same renderer the engine trains with, so the counts are the run's. Uploads count
with the default chat model, SmolLM2-135M-Instruct, whose tokenizer comes from the
platform's converted copy (``storage.converted_models``); before any worker has made
that copy the tokens are approximated from characters and the report says so.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from api.context import db, platform
from api.errors import ApiError
from storage.blobs import fetch_file
from storage.converted_models import published_build
from storage.models import StoredObject
from tunepool.builtin_models import SMOLLM2_NAME, SMOLLM2_SOURCE, smollm2_source_id
from tunepool.chat_estimates import DEFAULT_EPOCHS, DEFAULT_MAX_LENGTH
from tunepool.data.chat_tokenizer import CHAT_TOKENIZER_FILES, ChatTokenizer, load_chat_tokenizer
from tunepool.data.chat_upload import (
    CHAT_DATASET_FORMATS,
    ChatFileInvalid,
    chat_upload_stats,
    finish_chat_report,
    reader_format,
)

# What api.datasets accepts as a causal-lm dataset's format.
CHAT_FORMATS = CHAT_DATASET_FORMATS


def chat_tokenizer(source: str) -> ChatTokenizer | None:
    """The tokenizer of an allow-listed chat model's ``source`` (the operator's, never a
    caller's string): the builtin SmolLM2's converted copy, or a local model directory.
    None when the API cannot read one (no copy yet, a hub id)."""
    if source == SMOLLM2_SOURCE:
        local = _tokenizer_copy()
        return load_chat_tokenizer(str(local)) if local is not None else None
    if Path(source).is_dir():
        return load_chat_tokenizer(source)
    return None


def _tokenizer_copy() -> Path | None:
    """This host's copy of the tokenizer files of the published SmolLM2 build, fetched
    (checksums verified) the first time a report needs them."""
    session = db()
    build = published_build(session, SMOLLM2_NAME, smollm2_source_id())
    if build is None:
        return None
    root = platform().settings.model_cache_dir / "tokenizers"
    local = root.joinpath(*build.strip("/").split("/"))
    if local.is_dir():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".fetch.", dir=local.parent))
    try:
        for name in CHAT_TOKENIZER_FILES:
            if session.get(StoredObject, build + name) is not None:
                fetch_file(session, platform().store, build + name, partial / name)
        try:
            partial.rename(local)
        except OSError:  # another request of this host fetched it meanwhile
            if not local.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return local


def chat_dataset_stats(path: Path, fmt: str) -> dict[str, Any]:
    """The upload report of a chat file; ApiError 422 naming every line at fault."""
    tokenizer = chat_tokenizer(SMOLLM2_SOURCE)
    try:
        if tokenizer is None:
            return chat_upload_stats(path, fmt, DEFAULT_MAX_LENGTH)
        from worker.training.causal_lm.estimate import chat_token_report

        reader = reader_format(fmt)
        report = chat_token_report(path, reader, tokenizer, DEFAULT_MAX_LENGTH, DEFAULT_EPOCHS)
        return finish_chat_report(report, tokenizer=SMOLLM2_NAME)
    except ChatFileInvalid as exc:
        raise ApiError(
            422, "invalid_data", f"file: {exc}", "file", line=exc.line, problems=exc.problems
        ) from None
