"""Exact token counts of an uploaded chat dataset, with the default chat model's tokenizer.

The API checked the file line by line and approximated its tokens from characters; here
they are counted with SmolLM2's own tokenizer and chat template (the renderer the
engine trains with). The tokenizer comes from the platform's converted copy of the
model; before any worker has published one, the approximation stands (it says so).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from storage.blobs import fetch_file
from storage.converted_models import published_build
from storage.models import StoredObject
from storage.platform import Platform
from tunepool.builtin_models import SMOLLM2_NAME, smollm2_source_id
from tunepool.chat_estimates import DEFAULT_EPOCHS, DEFAULT_MAX_LENGTH
from tunepool.data.chat_tokenizer import CHAT_TOKENIZER_FILES, ChatTokenizer, load_chat_tokenizer
from tunepool.data.chat_upload import finish_chat_report, reader_format


def counted_chat_stats(platform: Platform, path: Path, fmt: str) -> dict[str, Any] | None:
    """The chat report with counted tokens; None while no converted copy is published.
    Raises ChatFileInvalid (a DataError naming the line) if a line is unusable."""
    tokenizer = _published_tokenizer(platform)
    if tokenizer is None:
        return None
    from worker.training.causal_lm.estimate import chat_token_report

    report = chat_token_report(
        path, reader_format(fmt), tokenizer, DEFAULT_MAX_LENGTH, DEFAULT_EPOCHS
    )
    return finish_chat_report(report, tokenizer=SMOLLM2_NAME)


def _published_tokenizer(platform: Platform) -> ChatTokenizer | None:
    local = _tokenizer_copy(platform)
    return load_chat_tokenizer(str(local)) if local is not None else None


def _tokenizer_copy(platform: Platform) -> Path | None:
    """This host's copy of the published build's tokenizer files (checksums verified),
    fetched the first time a check needs them."""
    with platform.sessions() as session:
        build = published_build(session, SMOLLM2_NAME, smollm2_source_id())
        if build is None:
            return None
        root = platform.settings.model_cache_dir / "tokenizers"
        local = root.joinpath(*build.strip("/").split("/"))
        if local.is_dir():
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".fetch.", dir=local.parent))
        try:
            for name in CHAT_TOKENIZER_FILES:
                if session.get(StoredObject, build + name) is not None:
                    fetch_file(session, platform.store, build + name, partial / name)
            try:
                partial.rename(local)
            except OSError:  # another check on this host fetched it meanwhile
                if not local.is_dir():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return local
