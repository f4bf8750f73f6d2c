"""The causal-LM SFT engine end to end on a tiny random Llama (seconds each)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.training.causal_lm_fixtures import colour_chats, write_chats
from tests.training.conftest import Recorder
from worker.training.causal_lm.estimate import dry_run_estimate
from worker.training.causal_lm.recipe import finetune_causal_lm
from worker.training.causal_lm.spec import SFTHyperparameters, SFTSettingsError, SFTSpec


@pytest.fixture(scope="module")
def chat_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chat")
    train = write_chats(folder / "train.jsonl", colour_chats(48, seed=1))
    valid = write_chats(folder / "valid.jsonl", colour_chats(8, seed=2))
    return train, valid


def sft_spec(model, files, output, **overrides):
    values = {"epochs": 2, "batch_size": 4, "learning_rate": 5e-3, "log_every_steps": 2}
    values.update(overrides)
    return SFTSpec(
        base_model=str(model),
        train_file=files[0],
        validation_file=files[1],
        output_dir=output,
        hyperparameters=SFTHyperparameters.from_dict(values),
        device="cpu",
    )


def step_losses(state_dir):
    state = json.loads((state_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["loss_history"]]


def test_lora_run_writes_a_plain_peft_adapter(tiny_llama, chat_files, tmp_path):
    recorder = Recorder()
    result = finetune_causal_lm(sft_spec(tiny_llama, chat_files, tmp_path / "run"), recorder)
    assert result.stopped is None
    assert (result.model_dir / "adapter_model.safetensors").exists()
    assert json.loads((result.model_dir / "adapter_config.json").read_text())["r"] == 16
    # Held-out loss and perplexity after each epoch; answers are labels, so they are scored.
    assert [epoch for epoch, _ in recorder.evaluations] == [1, 2]
    assert {"loss", "perplexity", "accuracy", "macro_f1"} <= result.metrics.keys()
    assert result.report["samples"] and "answer" in result.report["samples"][0]
    assert result.report["data"]["train"]["examples"] == 48
    assert recorder.progress and recorder.progress[0]["tokens_per_s"] > 0

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    loaded = PeftModel.from_pretrained(base, result.model_dir)
    ids = torch.tensor([[1, 5, 6, 7]])
    assert loaded(input_ids=ids).logits.shape == (1, 4, base.config.vocab_size)


@pytest.mark.parametrize(
    ("stop_at", "overrides"),
    [
        (3, {"packing": True}),
        # Micro-batches of ~2 examples: a step spans several forward passes.
        (5, {"packing": False, "micro_batch_tokens": 128, "label_balance": 1.0}),
        (7, {"lora_dropout": 0.2, "packing": True, "micro_batch_tokens": 96}),
    ],
)
def test_resumed_run_matches_uninterrupted_run(
    tiny_llama, chat_files, tmp_path, stop_at, overrides
):
    overrides = {"generation_eval_limit": 0, "sample_generations": 0, **overrides}
    full_spec = sft_spec(tiny_llama, chat_files, tmp_path / "full", **overrides)
    full = finetune_causal_lm(full_spec, Recorder())
    expected = step_losses(tmp_path / "full")
    assert full.global_step == len(expected) > stop_at

    first = sft_spec(tiny_llama, chat_files, tmp_path / "resumed", **overrides)
    stopped = finetune_causal_lm(first, Recorder(stop_at=stop_at))
    assert stopped.stopped == "preempt" and stopped.global_step == stop_at
    resumed = finetune_causal_lm(
        dataclasses.replace(first, resume_from=stopped.model_dir), Recorder()
    )
    assert resumed.global_step == full.global_step
    assert step_losses(tmp_path / "resumed") == pytest.approx(expected, abs=1e-5, rel=0)
    assert resumed.metrics["loss"] == pytest.approx(full.metrics["loss"], abs=1e-5)
    shares = resumed.report["data"]["label_shares"]
    if overrides.get("label_balance"):  # every colour drawn equally often
        assert shares and len(set(map(round, (v * 1000 for v in shares.values())))) == 1
    else:
        assert shares is None


def test_full_fine_tuning_and_merged_export(tiny_llama, chat_files, tmp_path):
    full = finetune_causal_lm(
        sft_spec(tiny_llama, chat_files, tmp_path / "full", method="full", epochs=1),
        Recorder(),
    )
    assert full.report["trainable_parameters"] == full.report["parameters"]
    assert AutoModelForCausalLM.from_pretrained(full.model_dir) is not None
    merged = finetune_causal_lm(
        sft_spec(tiny_llama, chat_files, tmp_path / "lora", merge_adapter=True, epochs=1),
        Recorder(),
    )
    assert merged.report["trainable_parameters"] < merged.report["parameters"] / 2
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "merged") is not None


def test_qlora_is_refused_without_cuda(tiny_llama, chat_files, tmp_path):
    with pytest.raises(SFTSettingsError) as caught:
        finetune_causal_lm(sft_spec(tiny_llama, chat_files, tmp_path, method="qlora"), Recorder())
    assert caught.value.code == "needs_cuda"


def test_spec_rejects_unknown_and_out_of_range_values():
    with pytest.raises(SFTSettingsError, match="learning_rat"):
        SFTHyperparameters.from_dict({"learning_rat": 1e-4})
    with pytest.raises(SFTSettingsError, match="lora_rank"):
        SFTHyperparameters(lora_rank=0)
    assert "all-linear" in SFTHyperparameters.help()["lora_target_modules"]


def test_dry_run_estimate():
    estimate = dry_run_estimate(train_tokens=10_000, epochs=3, tokens_per_s=500.0)
    assert estimate["billed_tokens"] == 30_000
    assert estimate["expected_seconds"] == 60.0
