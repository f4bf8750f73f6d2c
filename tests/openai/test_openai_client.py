"""The real ``openai`` package, pointed at a live tunepool, fine-tunes through its own API."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest
from openai.types.fine_tuning import FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from tests.cli.conftest import LiveApi
from tunepool.synthetic import conll_text
from worker.dataset_checks import check_dataset


def jsonl(n: int, seed: int) -> bytes:
    """The same generated sentences as tunepool's JSONL format ({"tokens", "tags"})."""
    lines, tokens, tags = [], [], []
    for row in [*conll_text(n, seed=seed).split("\n"), ""]:
        if row.strip():
            token, tag = row.split()
            tokens.append(token)
            tags.append(tag)
        elif tokens:
            lines.append(json.dumps({"tokens": tokens, "tags": tags}))
            tokens, tags = [], []
    return ("\n".join(lines) + "\n").encode()


def assert_checkpoint_metrics_are_those_of_their_step(
    checkpoints: list[FineTuningJobCheckpoint], events: list[FineTuningJobEvent]
) -> None:
    """The step's training loss, and validation scores only where an evaluation ran at
    that very step, never the best so far (issue 20, item 12)."""
    (evaluation,) = [e for e in events if e.message == "Epoch 1 evaluated"]  # counted from 1
    assert evaluation.data is not None
    by_step = {c.step_number: c.metrics for c in checkpoints}
    assert {15, 16} <= set(by_step), sorted(by_step)
    for step, metrics in by_step.items():
        assert metrics.step == step and isinstance(metrics.train_loss, float), (step, metrics)
        extra = metrics.model_extra or {}
        if step == 15:  # the end of epoch 1: evaluated at this very step
            assert metrics.valid_loss == evaluation.data["loss"]
            assert extra["valid_f1"] == evaluation.data["f1"]
        else:  # nothing evaluated here: no validation scores, least of all older ones
            assert metrics.valid_loss is None, (step, metrics)
            assert not any(key.startswith("valid_") for key in extra), (step, metrics)


def test_openai_client_uploads_creates_follows_retrieves_and_cancels(
    live_api: LiveApi, tiny_model: str
) -> None:
    client = openai.OpenAI(base_url=f"{live_api.url}/v1", api_key=live_api.key, max_retries=0)
    train = client.files.create(
        file=("train.jsonl", io.BytesIO(jsonl(120, 1))), purpose="fine-tune"
    )
    validation = client.files.create(
        file=("validation.conll", io.BytesIO(conll_text(30, seed=2).encode())), purpose="fine-tune"
    )
    assert train.object == "file" and train.purpose == "fine-tune" and train.bytes > 0
    assert client.files.retrieve(train.id).filename == "train.jsonl"
    # Format checked at upload; "processed" once a worker has read it with a tokenizer.
    assert train.status == "uploaded" and train.status_details is None
    assert check_dataset(live_api.workers.platform, train.id) == "ready"
    assert client.files.retrieve(train.id).status == "processed"

    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client.fine_tuning.jobs.create(model=tiny_model, training_file="ds_missing")
    assert "training_file" in str(bad.value)

    job = client.fine_tuning.jobs.create(
        model=tiny_model,
        training_file=train.id,
        validation_file=validation.id,
        hyperparameters={"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 20},
        suffix="oa-ner",
        seed=7,
        metadata={"ticket": "T-1"},
    )
    assert job.object == "fine_tuning.job" and job.status == "queued"  # no worker yet
    assert job.hyperparameters.n_epochs == 2 and job.seed == 7
    assert job.metadata == {"ticket": "T-1"} and job.fine_tuned_model is None

    # 120 sentences in batches of 8: 15 steps an epoch. A checkpoint every 4 steps gives
    # steps 4, 8, 12, 15 (the end of epoch 1, just evaluated), 16, 20, 24, 28.
    live_api.workers.env.update(TUNEPOOL_CHECKPOINT_EVERY_STEPS="4", TUNEPOOL_KEEP_CHECKPOINTS="50")
    live_api.workers.start("wA")
    deadline = time.monotonic() + 240
    while (current := client.fine_tuning.jobs.retrieve(job.id)).status not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert current.status == "succeeded", current.error
    assert current.fine_tuned_model == "ft-oa-ner:1"
    assert current.trained_tokens and current.trained_tokens > 0
    assert current.error is None and current.finished_at >= current.created_at

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in events]
    assert messages[0].startswith("Job succeeded")  # newest first
    assert any(e.type == "metrics" and e.data.get("train_loss") is not None for e in events)
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    older = client.fine_tuning.jobs.list_events(job.id, limit=2, after=page.data[-1].id)
    assert [e.id for e in older.data] == [e.id for e in events[2:4]]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoints and checkpoints[0].step_number > 0
    assert_checkpoint_metrics_are_those_of_their_step(checkpoints, events)
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [job.id]

    # Cancel: a second job that waits behind nothing runs; cancel it while queued or running.
    second = client.fine_tuning.jobs.create(model=tiny_model, training_file=train.id)
    cancelled = client.fine_tuning.jobs.cancel(second.id)
    assert cancelled.id == second.id and cancelled.status in ("cancelled", "running")
    deadline = time.monotonic() + 120
    while client.fine_tuning.jobs.retrieve(second.id).status != "cancelled":
        assert time.monotonic() < deadline, "the cancel did not take"
        time.sleep(0.5)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("job_missing")
