"""Training only the used embedding rows follows the dense AdamW run, and saves like it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_model, save_model

from worker.training.compact_embedding import (
    CompactEmbedding,
    compact_input_embeddings,
    used_token_ids,
)
from worker.training.models import load_task_model

LABELS = ["B-X", "I-X", "O"]


def _model(tiny_model: Path, task: str = "token-classification") -> torch.nn.Module:
    model = load_task_model(task, str(tiny_model), LABELS, 7, torch.device("cpu"))
    model.train()
    return model


def _train(model: torch.nn.Module, batches: list[dict[str, torch.Tensor]]) -> list[float]:
    # A high learning rate and weight decay, so that the untouched rows' decay shows.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, fused=True)
    compact = model.get_input_embeddings()  # type: ignore[operator]
    if isinstance(compact, CompactEmbedding):
        optimizer.register_step_post_hook(compact.after_step)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / 10)
    losses = []
    for batch in batches:
        torch.manual_seed(len(losses))  # the same dropout masks in both runs
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
    return losses


def _batches(used: list[int]) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(6):
        picks = torch.randint(0, len(used), (4, 9), generator=generator)
        input_ids = torch.tensor(used)[picks]
        input_ids[:, 0], input_ids[:, -1] = 101, 102
        input_ids[0, -3:] = 0  # padding in one row
        batches.append(
            {
                "input_ids": input_ids,
                "attention_mask": (input_ids != 0).long(),
                "labels": torch.randint(0, len(LABELS), (4, 9), generator=generator),
            }
        )
    return batches


def test_the_compact_run_matches_the_dense_one_step_by_step(tiny_model: Path) -> None:
    data_ids = [1037, 2003, 2154, 3231, 4937, 5555, 7592, 2088]
    used = used_token_ids([data_ids], special_ids=[0, 100, 101, 102, 103])
    batches = _batches(data_ids)
    dense, compact = _model(tiny_model), _model(tiny_model)
    module = compact_input_embeddings(compact, used)
    assert isinstance(module, CompactEmbedding)
    # The optimizer holds 13 rows instead of the whole vocabulary.
    assert module.rows.shape[0] == len(used) == 13
    dense_losses = _train(dense, batches)
    compact_losses = _train(compact, batches)
    assert compact_losses == pytest.approx(dense_losses, abs=1e-5)
    dense_state, compact_state = dense.state_dict(), compact.state_dict()
    assert dense_state.keys() == compact_state.keys()
    for name, value in dense_state.items():
        torch.testing.assert_close(compact_state[name], value, atol=1e-6, rtol=1e-5, msg=name)
    # An untouched row really moved (decay), and the compact run moved it the same way.
    before = _model(tiny_model).get_input_embeddings().weight[5000]
    weight = "bert.embeddings.word_embeddings.weight"
    assert not torch.allclose(dense_state[weight][5000], before)


def test_its_state_dict_is_the_dense_weight_both_ways(tiny_model: Path, tmp_path: Path) -> None:
    used = used_token_ids([[2003, 2154]], special_ids=[0, 101, 102])
    trained = _model(tiny_model)
    module = compact_input_embeddings(trained, used)
    assert module is not None
    _train(trained, _batches([2003, 2154]))
    save_model(trained, str(tmp_path / "model.safetensors"))
    # A plain model loads it (the saved model is an ordinary Hugging Face one) ...
    plain = _model(tiny_model)
    load_model(plain, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(plain.get_input_embeddings().weight, module.weight)
    # ... and so does a compact one, as on resume: its rows are the saved rows.
    resumed = _model(tiny_model)
    again = compact_input_embeddings(resumed, used)
    assert again is not None
    load_model(resumed, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(again.rows, module.rows)
    torch.testing.assert_close(again.weight, module.weight)
    # save_pretrained writes the dense matrix too.
    trained.save_pretrained(tmp_path / "hf")  # type: ignore[operator]
    reloaded = load_task_model(
        "token-classification", str(tmp_path / "hf"), LABELS, 1, torch.device("cpu")
    )
    torch.testing.assert_close(reloaded.get_input_embeddings().weight, module.weight)


def test_masked_lm_keeps_its_dense_embedding(tiny_model: Path) -> None:
    # Its output layer shares the matrix: every row gets a gradient from the softmax.
    model = _model(tiny_model, "masked-lm")
    assert compact_input_embeddings(model, torch.tensor([0, 101, 102])) is None
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)
