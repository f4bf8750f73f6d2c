"""Stacked adapters compute, row by row, what PEFT computes for each adapter alone."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.inference.generation.tiny_llama import lora_adapter_dir
from worker.inference.generation.lora_stack import LoraStack, UnsupportedAdapter, read_lora

MLP = ("gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def base(llama_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(llama_dir).eval()


@pytest.fixture(scope="module")
def mixed(llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Different ranks and different target layers, so stacks pad ranks and skip rows."""
    root = tmp_path_factory.mktemp("mixed")
    return {
        "r4-attention": lora_adapter_dir(llama_dir, root / "a", seed=1, rank=4),
        "r8-everything": lora_adapter_dir(
            llama_dir, root / "b", seed=2, rank=8, targets=("q_proj", "k_proj", "v_proj", *MLP)
        ),
        "r2-mlp": lora_adapter_dir(llama_dir, root / "c", seed=3, rank=2, targets=MLP),
    }


def peft_logits(base: Any, adapter: Path | None, ids: torch.Tensor) -> torch.Tensor:
    from peft import PeftModel

    model = base if adapter is None else PeftModel.from_pretrained(copy.deepcopy(base), adapter)
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_each_row_gets_what_its_adapter_alone_computes(base: Any, mixed: dict[str, Path]) -> None:
    stack = LoraStack(base)
    for name, path in mixed.items():
        stack.add(name, read_lora(path, base))
    rows: list[str | None] = ["r8-everything", None, "r4-attention", "r2-mlp", "r8-everything"]
    ids = torch.randint(1000, 2000, (len(rows), 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), stack.routed(rows):
        batched = base(input_ids=ids).logits
    for i, row in enumerate(rows):
        alone = peft_logits(base, None if row is None else mixed[row], ids[i : i + 1])
        torch.testing.assert_close(batched[i : i + 1], alone, atol=1e-4, rtol=1e-4)
    with torch.inference_mode():  # outside `routed` the model is the plain base
        torch.testing.assert_close(base(input_ids=ids).logits, peft_logits(base, None, ids))


def test_a_removed_adapter_leaves_the_others_as_they_were(
    base: Any, mixed: dict[str, Path]
) -> None:
    stack = LoraStack(base)
    for name, path in mixed.items():
        stack.add(name, read_lora(path, base))
    stack.remove("r8-everything")  # the only adapter on k_proj: its hooks must go too
    stack.remove("r4-attention")
    assert len(stack) == 1 and "r2-mlp" in stack
    ids = torch.randint(1000, 2000, (2, 5), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode(), stack.routed(["r2-mlp", None]):
        batched = base(input_ids=ids).logits
    torch.testing.assert_close(batched[:1], peft_logits(base, mixed["r2-mlp"], ids[:1]))
    torch.testing.assert_close(batched[1:], peft_logits(base, None, ids[1:]))
    with pytest.raises(KeyError, match="r4-attention"), stack.routed(["r4-attention"]):
        pass


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"bias": "lora_only"}, "biases"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ],
)
def test_variants_that_are_not_plain_lora_are_refused(
    base: Any, tmp_path: Path, config: dict[str, Any], reason: str
) -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=2, target_modules=["q_proj"], **config)
    )
    model.save_pretrained(str(tmp_path))
    with pytest.raises(UnsupportedAdapter, match=reason):
        read_lora(tmp_path, base)
