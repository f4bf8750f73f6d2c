"""Chat fine-tuning through the official ``openai`` SDK: a chat JSONL file of the shared
data, a SmolLM2-135M-Instruct job with OpenAI's hyperparameters, the fine-tuned model's
OpenAI name, and the model list (base models and the team's own, never another's)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import openai
import pytest
from sqlalchemy import select

from storage.db import transaction
from storage.models import Job, ModelVersion, Team
from storage.teams import create_team
from storage.workers import WorkerInfo, register
from tests.cli.conftest import LiveApi
from tunepool.messages import worker_queue

# The SMS-spam chat slice kept in the repository (CC BY 4.0, see its README), so the test
# runs wherever the repository is cloned.
SMS = Path(__file__).resolve().parents[2] / "demo" / "sms_spam"


def _client(live_api: LiveApi, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_api.url}/v1", api_key=key or live_api.key, max_retries=0)


def _head(path: Path, lines: int) -> bytes:
    with path.open("rb") as f:
        return b"".join(f.readline() for _ in range(lines))


def test_a_chat_file_makes_a_causal_lm_job_with_openais_hyperparameters(
    live_api: LiveApi,
) -> None:
    client = _client(live_api)
    with transaction(live_api.workers.platform.sessions) as session:  # room to plan on
        register(session, WorkerInfo("w-idle", "host", worker_queue("w-idle"), 1))
    train = client.files.create(
        file=("sms_spam_train.jsonl", (SMS / "train.jsonl").open("rb")),
        purpose="fine-tune",
    )
    test = client.files.create(
        file=("sms_spam_test.jsonl", io.BytesIO(_head(SMS / "test.jsonl", 50))),
        purpose="fine-tune",
    )
    assert train.filename == "sms_spam_train.jsonl" and train.bytes > 10_000
    assert {f.id for f in client.files.list()} == {train.id, test.id}
    first = client.files.list(limit=1, order="asc")
    assert [f.id for f in first.data] == [train.id] and first.has_more
    assert [f.id for f in client.files.list(limit=1, order="asc", after=train.id).data] == [test.id]

    job = client.fine_tuning.jobs.create(
        model="SmolLM2-135M-Instruct",
        training_file=train.id,
        validation_file=test.id,
        hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5},
        suffix="spam",
    )
    assert job.status == "queued" and job.model == "SmolLM2-135M-Instruct"
    assert job.hyperparameters.n_epochs == 2
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(0.5)
    assert job.method is not None and job.method.type == "supervised"
    # Placed on the idle worker: expected to end after its dry run's seconds.
    assert job.estimated_finish is not None and job.estimated_finish > time.time()
    with live_api.workers.platform.sessions() as session:
        row = session.get(Job, job.id)
        assert row is not None
        assert (row.type, row.task, row.model_name) == ("finetune", "causal-lm", "ft-spam")
        assert row.spec["hyperparameters"] == {
            "epochs": 2,
            "batch_size": 4,
            "learning_rate": pytest.approx(1e-4),  # 0.5 x LoRA's 2e-4
        }
        assert row.spec["validation_dataset"] == test.id
        # Its dry run: the file's tokens x 2 epochs, planned with.
        assert row.spec["runtime_estimate"]["epochs"] == 2
        assert row.spec["estimated_runtime_s"] > 0

    # OpenAI's current place for hyperparameters: method.supervised.
    method = client.fine_tuning.jobs.create(
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        training_file=train.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
    )
    assert method.hyperparameters.n_epochs == 3
    with pytest.raises(openai.UnprocessableEntityError) as dpo:
        client.fine_tuning.jobs.create(
            model="SmolLM2-135M-Instruct", training_file=train.id, method={"type": "dpo"}
        )
    assert "method.type" in str(dpo.value)
    with pytest.raises(openai.UnprocessableEntityError) as encoder:
        client.fine_tuning.jobs.create(model="all-MiniLM-L6-v2", training_file=train.id)
    assert "model" in str(encoder.value) and "chat model" in str(encoder.value)


def test_the_fine_tuned_model_has_openais_name_and_only_its_team_sees_it(
    live_api: LiveApi,
) -> None:
    client = _client(live_api)
    rows = _head(SMS / "train.jsonl", 20)
    train = client.files.create(file=("sms.jsonl", io.BytesIO(rows)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="SmolLM2-135M-Instruct", training_file=train.id, suffix="spam-bot"
    )
    # What the worker's run records when it succeeds (the run itself: tests/e2e).
    platform = live_api.workers.platform
    with transaction(platform.sessions) as session:
        row = session.get(Job, job.id)
        assert row is not None
        version = ModelVersion(
            team_id=row.team_id, name="ft-spam-bot", version=1, job_id=row.id,
            task="causal-lm", prefix=f"teams/{row.team_id}/models/ft-spam-bot/1/",
            base_model="SmolLM2-135M-Instruct", artifact="adapter",
        )  # fmt: skip
        session.add(version)
        session.flush()
        row.state, row.model_version_id, row.finished_at = "succeeded", version.id, time.time()
        team = session.scalar(select(Team.name).where(Team.id == row.team_id))

    done = client.fine_tuning.jobs.retrieve(job.id)
    name = f"ft:SmolLM2-135M-Instruct:{team}:spam-bot:{job.id}"
    assert done.status == "succeeded" and done.fine_tuned_model == name
    assert done.trained_tokens and done.trained_tokens > 0

    listed = {m.id: m for m in client.models.list()}
    assert name in listed and listed[name].owned_by != "tunepool"
    assert {"SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"} <= set(listed)
    assert listed["SmolLM2-135M-Instruct"].owned_by == "tunepool"
    assert None not in listed
    assert client.models.retrieve(name).id == name
    # The chat routes serve the fine-tune under the same name (storage.chat_models).
    from storage.chat_models import NotAChatModel, resolve_chat_model

    with platform.sessions() as session:
        served = resolve_chat_model(
            session, row.team_id, name, {"SmolLM2-135M-Instruct": "builtin:smollm2"}
        )
        assert served.base_model == "SmolLM2-135M-Instruct"
        assert served.adapter is not None and served.adapter.version_id == version.id
        whole = ModelVersion(
            team_id=row.team_id, name="ft-spam-full", version=1, task="causal-lm",
            prefix=f"teams/{row.team_id}/models/ft-spam-full/1/",
            base_model="SmolLM2-135M-Instruct", artifact="model",
        )  # fmt: skip
        session.add(whole)
        session.flush()
        with pytest.raises(NotAChatModel, match="full fine-tune"):
            resolve_chat_model(
                session, row.team_id, "ft-spam-full", {"SmolLM2-135M-Instruct": "builtin:smollm2"}
            )
    assert client.models.retrieve("ft-spam-bot:1").id == "ft-spam-bot:1"
    hub = client.models.retrieve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert hub.id == "HuggingFaceTB/SmolLM2-135M-Instruct" and hub.owned_by == "tunepool"

    with transaction(platform.sessions) as session:
        _, other_key = create_team(session, "other-team", role="member")
    other = _client(live_api, other_key)
    assert name not in {m.id for m in other.models.list()}
    for ref in (name, "ft-spam-bot:1", "ft-spam-bot"):
        with pytest.raises(openai.NotFoundError):
            other.models.retrieve(ref)
    assert list(other.files.list()) == []
