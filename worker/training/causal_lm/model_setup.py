"""Load the base causal LM and make it trainable: LoRA (peft), QLoRA or all weights.

LoRA keeps the base frozen and trains low-rank updates of every linear layer by
default ("all-linear", which peft resolves to all of them except the LM head), the
setting that matches full fine-tuning best in published comparisons at a fraction
of the memory. Attention: flash-attention 2 on CUDA when the `flash_attn` package is
installed (packed rows then run as variable-length sequences, no mask at all), SDPA
otherwise, with the block-diagonal mask transformers builds from the position ids.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from worker.training.causal_lm.spec import SFTHyperparameters, check_device_support


def load_trainable_model(base: str, hp: SFTHyperparameters, device: torch.device) -> Any:
    """The model ready to train on `device`, with only its trainable part requiring grad."""
    from transformers import AutoModelForCausalLM

    check_device_support(hp, device.type)
    varlen = device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None
    attention = "flash_attention_2" if varlen else "sdpa"
    # Weights stay fp32 (the optimizer's master copy); CUDA runs under bf16 autocast.
    options: dict[str, Any] = {"attn_implementation": attention, "dtype": torch.float32}
    if hp.method == "qlora":
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        options["device_map"] = {"": device.index or 0}
    torch.manual_seed(hp.seed)  # LoRA's A matrices are drawn at wrapping time
    model: Any = AutoModelForCausalLM.from_pretrained(base, **options)
    if hp.method != "qlora":
        model = model.to(device)
    model.config.use_cache = False  # the KV cache is for generation, not training
    if hp.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if hp.method == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if hp.method == "qlora":
        model = prepare_model_for_kbit_training(model, hp.gradient_checkpointing)
    target: Any = hp.lora_target_modules
    config = LoraConfig(
        r=hp.lora_rank,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules=target if isinstance(target, str) else list(target),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters the optimizer updates (the adapter, or everything for full FT)."""
    return {
        name: parameter.detach().contiguous()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable_parameters": trainable}
