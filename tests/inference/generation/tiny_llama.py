"""A tiny random Llama and random LoRA adapters for it, built with transformers and peft.

The tokenizer is MiniLM's (packaged, offline) with a small chat template, so the
model's vocabulary matches a real tokenizer. Weights are drawn wide
(initializer_range 0.5) so greedy choices are far apart and float noise between
batched and lone runs cannot flip them.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}[assistant]{% endif %}"
)
EOS = 102  # [SEP]


def tiny_llama_dir(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from worker.training.models import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.eos_token = "[SEP]"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        initializer_range=0.5,
        tie_word_embeddings=True,
        bos_token_id=101,
        eos_token_id=EOS,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def lora_adapter_dir(
    base: Path,
    path: Path,
    seed: int,
    *,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    rank: int = 4,
    use_dora: bool = False,
) -> Path:
    """A LoRA adapter whose B matrices are random (PEFT starts them at zero), so adapters differ."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), use_dora=use_dora),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=1.0)
    model.save_pretrained(path)
    return path
