"""A chat fine-tune (task causal-lm) runs end to end on a real worker process, through
the same envelope as every job, and its adapter is a model version that plain
``peft.PeftModel.from_pretrained`` loads over its base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from api.app import create_app
from scheduler.ticks import run_reaper
from storage.blobs import fetch_dir
from storage.db import transaction
from storage.models import Checkpoint, Job, JobEvent, ModelVersion
from storage.teams import create_team
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.training.causal_lm_fixtures import colour_chats, store_chat_dataset, write_chats

pytestmark = pytest.mark.chaos

TINY_LLAMA = "tiny-llama"


@pytest.fixture(scope="session")
def tiny_base_models(tiny_base_models: dict[str, str], tiny_llama: Path) -> dict[str, str]:
    """The ``live`` platform's allow-list, with the tiny random Llama beside the tiny BERT."""
    return {**tiny_base_models, TINY_LLAMA: str(tiny_llama)}


def test_a_chat_fine_tune_succeeds_and_its_adapter_loads_with_peft(
    live: WorkerProcs, tiny_llama: Path, tmp_path: Path
) -> None:
    client = create_app(platform=live.platform).test_client()
    with transaction(live.platform.sessions) as session:
        _, key = create_team(session, "chat", role="member")
    headers = {"Authorization": f"Bearer {key}"}
    store = live.platform.store
    train = store_chat_dataset(
        live.platform.sessions,
        store,
        "chat",
        write_chats(tmp_path / "train.jsonl", colour_chats(24)),
    )
    validation = store_chat_dataset(
        live.platform.sessions,
        store,
        "chat",
        write_chats(tmp_path / "validation.jsonl", colour_chats(6, seed=1)),
    )
    live.start("wA")
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "task": "causal-lm",
            "base_model": TINY_LLAMA,
            "train_dataset": train,
            "validation_dataset": validation,
            "model_name": "colours",
            "hyperparameters": {
                "lora_rank": 4,
                "lora_alpha": 8,
                "epochs": 2,
                "batch_size": 8,
                "max_length": 64,
                "learning_rate": 5e-3,
                "log_every_steps": 1,
                "checkpoint_every_steps": 2,
                "sample_generations": 1,
            },
        },
    )
    assert resp.status_code == 201, resp.get_json()
    job_id = resp.get_json()["id"]

    def job() -> Job:
        with live.platform.sessions() as session:
            found = session.get(Job, job_id)
            assert found is not None
            return found

    wait_until(
        lambda: job().state in ("succeeded", "failed"),
        120,
        "the chat fine-tune to finish",
        on_tick=lambda: run_reaper(live.platform),
    )
    finished = job()
    assert finished.state == "succeeded", (finished.error, live.log("wA")[-3000:])
    assert finished.metrics["global_step"] == 6  # 24 examples, 8 a step, 2 epochs
    assert [e["epoch"] for e in finished.metrics["epochs"]] == [1, 2]  # held-out loss each epoch
    assert "perplexity" in finished.metrics and finished.metrics["report"]["samples"]

    with live.platform.sessions() as session:
        version = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job_id))
        assert version is not None and version.id == finished.model_version_id
        assert (version.name, version.task, version.artifact) == ("colours", "causal-lm", "adapter")
        assert version.base_model == TINY_LLAMA and version.base_version_id is None
        assert session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id)) is not None
        states = session.scalars(
            select(JobEvent.new_state)
            .where(JobEvent.job_id == job_id, JobEvent.kind == "state")
            .order_by(JobEvent.id)
        ).all()
        assert states == ["pending", "queued", "running", "succeeded"]
        fetch_dir(session, store, version.prefix, tmp_path / "adapter")

    # The stored version is a plain PEFT adapter: safetensors and its config, naming the
    # base by its registry name (not the worker's scratch path).
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == TINY_LLAMA and config["r"] == 4
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    untouched = base(input_ids=torch.tensor([[1, 5, 6, 7]])).logits
    tuned = PeftModel.from_pretrained(base, adapter)
    logits = tuned(input_ids=torch.tensor([[1, 5, 6, 7]])).logits
    assert logits.shape == untouched.shape
    assert not torch.allclose(logits, untouched)  # the trained adapter changes the answers
