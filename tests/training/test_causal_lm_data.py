"""Chat rendering labels exactly the assistant turns; packing changes no loss."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunepool.data.chat import ChatExample, ChatMessage
from worker.training.causal_lm.batches import (
    collate_packed,
    collate_padded,
    micro_batches,
    shared_prefix,
    summed_loss,
    target_count,
)
from worker.training.causal_lm.rendering import IGNORE_INDEX, encode_chat

TWO_TURNS = ChatExample(
    (
        ChatMessage("user", "What is 2+2?"),
        ChatMessage("assistant", "4, of course."),
        ChatMessage("user", "And 3+3?"),
        ChatMessage("assistant", "Six."),
    ),
    line=7,
    format="openai",
)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


def test_label_mask_is_the_assistant_contents_and_end_of_turn(tokenizer):
    encoded = encode_chat(tokenizer, TWO_TURNS, max_length=1024)
    messages = [{"role": m.role, "content": m.content} for m in TWO_TURNS.messages]
    rendered = tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]
    assert encoded.input_ids == rendered  # the template's own rendering, token for token

    trained = [token for token in encoded.labels if token != IGNORE_INDEX]
    expected = tokenizer("4, of course.<|im_end|>Six.<|im_end|>", add_special_tokens=False)
    assert trained == expected["input_ids"]
    # Labelled positions are runs that end right on an end-of-turn token.
    runs = "".join("x" if t != IGNORE_INDEX else "." for t in encoded.labels).split(".")
    assert [len(run) for run in runs if run] == [len("4, of course.") + 1, len("Six.") + 1]


def test_weight_zero_turns_are_context_only(tokenizer):
    messages = list(TWO_TURNS.messages)
    messages[1] = ChatMessage("assistant", "4, of course.", weight=0)
    encoded = encode_chat(tokenizer, ChatExample(tuple(messages), 1, "openai"), 1024)
    trained = [token for token in encoded.labels if token != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "Six.<|im_end|>"


def test_truncation_is_flagged(tokenizer):
    encoded = encode_chat(tokenizer, TWO_TURNS, max_length=20)
    assert encoded.truncated and len(encoded.input_ids) == 20


def chats(count):
    rows = []
    for index in range(count):
        answer = "yes " * (index % 4 + 1)
        rows.append(
            ChatExample(
                (ChatMessage("user", f"Q{index}" + "?" * index), ChatMessage("assistant", answer)),
                index + 1,
                "openai",
            )
        )
    return rows


def test_packed_loss_equals_unpacked_loss(tiny_llama, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    items = [encode_chat(tokenizer, chat, 1024) for chat in chats(6)]
    device = torch.device("cpu")
    count = target_count(items)
    with torch.no_grad():
        packed = summed_loss(model, collate_packed(items), device) / count
        padded = summed_loss(model, collate_padded(items, tokenizer.pad_token_id), device) / count
        one_by_one = sum(summed_loss(model, collate_packed([item]), device) for item in items)
    assert packed.item() == pytest.approx(padded.item(), abs=1e-4)
    assert packed.item() == pytest.approx(one_by_one.item() / count, abs=1e-4)
    # Without restarting positions the examples would see each other: the loss moves.
    crosstalk = collate_packed(items)
    crosstalk["position_ids"] = torch.arange(crosstalk["input_ids"].shape[1])[None]
    with torch.no_grad():
        leaked = summed_loss(model, crosstalk, device) / count
    assert abs(leaked.item() - packed.item()) > 1e-3


def sms_like(count):
    """Classification as chat: one fixed instruction, then a message of its own."""
    words = ["free prize", "see you at 5", "call now to win", "ok", "lunch?", "txt STOP"]
    return [
        ChatExample(
            (
                ChatMessage("user", "Is this message spam or ham? Answer with one word.\n\n"
                            + words[index % len(words)] + "!" * index),
                ChatMessage("assistant", "spam" if index % 3 == 0 else "ham"),
            ),
            index + 1,
            "openai",
        )
        for index in range(count)
    ]  # fmt: skip


def test_shared_prefix_changes_neither_loss_nor_gradients(tiny_llama, tokenizer):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    items = [encode_chat(tokenizer, chat, 1024) for chat in sms_like(5)]
    device = torch.device("cpu")
    shared = collate_padded(items, tokenizer.pad_token_id)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is this message spam or ham?"}], tokenize=True
    )["input_ids"]
    # The whole common opening is shared: at least the template and the instruction.
    assert shared["prefix_ids"].shape[1] >= len(prompt) - 1
    assert (
        shared["attention_mask"].shape[1]
        == shared["prefix_ids"].shape[1] + shared["input_ids"].shape[1]
    )

    def loss_and_grads(batch):
        model.zero_grad()
        loss = summed_loss(model, batch, device)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain_loss, plain_grads = loss_and_grads(
        collate_padded(items, tokenizer.pad_token_id, share_prefix=False)
    )
    shared_loss, shared_grads = loss_and_grads(shared)
    assert shared_loss == pytest.approx(plain_loss, abs=1e-4)
    assert len(shared_grads) == len(plain_grads) > 0
    for ours, theirs in zip(shared_grads, plain_grads, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4)


def test_shared_prefix_stops_before_any_target(tokenizer):
    # Rows that differ only in their answers share everything up to the position
    # that predicts the answer's first token, which each row must compute itself.
    same_question = [
        ChatExample((ChatMessage("user", "Spam?"), ChatMessage("assistant", answer)), 1, "openai")
        for answer in ("spam", "ham")
    ]
    items = [encode_chat(tokenizer, chat, 1024) for chat in same_question]
    first_target = min(
        next(t for t, label in enumerate(item.labels) if label != IGNORE_INDEX) for item in items
    )
    assert shared_prefix(items) == first_target - 1
    assert shared_prefix(items[:1]) == 0  # one row has nothing to share with


def test_micro_batches_respect_the_budget_and_keep_every_example():
    lengths = [5, 9, 3, 7, 7, 2, 10, 1, 20]
    step = list(range(len(lengths)))
    for packed in (True, False):
        groups = micro_batches(step, lengths, budget=12, packed=packed)
        assert sorted(i for group in groups for i in group) == step
        for group in groups:
            cost = (
                sum(lengths[i] for i in group)
                if packed
                else len(group) * max(lengths[i] for i in group)
            )
            assert cost <= 12 or group == [8]  # an example over the budget goes alone


def test_token_report_counts_long_examples_and_estimates(tokenizer, tmp_path):
    from tests.training.causal_lm_fixtures import write_chats
    from worker.training.causal_lm.estimate import chat_token_report

    short = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    long = {"messages": [{"role": "user", "content": "x" * 300}, short["messages"][1]]}
    path = write_chats(tmp_path / "c.jsonl", [short, long, short, long])
    report = chat_token_report(path, "auto", tokenizer, 128, epochs=2, tokens_per_s=100.0)
    assert report["valid"] and report["examples"] == 4
    assert report["tokens"]["examples_over_max_length"] == {"count": 2, "lines": [2, 4]}
    assert report["tokens"]["max"] == 128
    assert report["estimate"]["billed_tokens"] == 2 * report["tokens"]["total"]
    assert report["estimate"]["expected_seconds"] == round(report["tokens"]["total"] * 2 / 100, 1)
