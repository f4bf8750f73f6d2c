"""The builtin SmolLM2: converted once from the packaged GGUF, then reused."""

from __future__ import annotations

import pytest
import torch

from worker.training.causal_lm.base_models import (
    SMOLLM2_NAME,
    convert_gguf_to_safetensors,
    resolve_causal_base,
    smollm2_gguf_path,
)


def test_a_finished_conversion_is_reused(tmp_path):
    done = tmp_path / SMOLLM2_NAME
    done.mkdir()
    (done / ".converted.json").write_text("{}")
    # Returns at once: converting would take a minute and write model.safetensors.
    assert resolve_causal_base("SmolLM2-135M-Instruct", tmp_path) == str(done)
    assert not (done / "model.safetensors").exists()
    assert resolve_causal_base("/some/local/dir", tmp_path) == "/some/local/dir"


@pytest.mark.slow
def test_converted_smollm2_matches_the_gguf_model(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    out = convert_gguf_to_safetensors(gguf, tmp_path / "smollm2")
    assert (out / "model.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["smollm2"]  # no partial copy left
    tokenizer = AutoTokenizer.from_pretrained(out)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    converted = AutoModelForCausalLM.from_pretrained(out).eval()
    original = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    assert sum(p.numel() for p in converted.parameters()) == pytest.approx(134.5e6, rel=0.01)
    with torch.no_grad():
        assert torch.allclose(converted(ids).logits, original(ids).logits, atol=1e-4)
